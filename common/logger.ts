import { createRequire } from "node:module";
import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from "pino";

/** Structured logs on stderr (pino): JSON lines, or human-readable lines for a person at a terminal. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** `json`: one JSON object per line (machines, pipes); `pretty`: `time LEVEL service event key=value…` (terminals). */
export type LogFormat = "json" | "pretty";
export const LOG_FORMATS: readonly LogFormat[] = ["json", "pretty"];

export interface LogOptions {
  /** Only errors are written (MODELSWAP_LOG=silent). */
  quiet?: boolean;
  /** Default json. The process's env file decides (cli/cli-env.ts, services/runner/runner-env.ts). */
  format?: LogFormat;
  /** ANSI colours in the pretty format. */
  colors?: boolean;
}

/** Adds fields (e.g. the active trace id) to every line; set by telemetry, applied as pino's mixin. */
export type LogEnricher = () => LogFields;
let enricher: LogEnricher = () => ({});
export function setLogEnricher(next: LogEnricher): void {
  enricher = next;
}

/** Fields a pretty line shows in its prefix or leaves to the JSON format. */
const PRETTY_HIDDEN = new Set(["level", "time", "service", "event", "traceId", "spanId"]);

export function createLogger(service: string, base: LogFields = {}, options: LogOptions = {}): Logger {
  const root = pino(
    {
      base: { service, ...base },
      messageKey: "event",
      level: options.quiet ? "error" : "info",
      timestamp: stdTimeFunctions.isoTime,
      mixin: () => enricher(),
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => serializeValues(fields),
      },
    },
    destination(options),
  );
  return wrap(root);
}

function wrap(logger: PinoLogger): Logger {
  return {
    info: (event, fields) => logger.info(fields ?? {}, event),
    warn: (event, fields) => logger.warn(fields ?? {}, event),
    error: (event, fields) => logger.error(fields ?? {}, event),
    child: (fields) => wrap(logger.child(serializeValues(fields))),
  };
}

/**
 * Synchronous writes to stderr in both formats: no worker thread (pino transports start one,
 * which a runner would pay for in memory), and nothing is lost when a process exits.
 * pino-pretty is loaded only for the pretty format.
 */
function destination(options: LogOptions): DestinationStream {
  if (options.format !== "pretty") return pino.destination({ fd: 2, sync: true });
  const pretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
  return pretty.build({
    destination: 2,
    sync: true,
    colorize: options.colors ?? false,
    messageKey: "event",
    translateTime: "SYS:HH:MM:ss.l",
    hideObject: true,
    messageFormat: (line: Record<string, unknown>) => prettyMessage(line),
  });
}

/**
 * `gateway gateway_listening address=127.0.0.1:50051 placement=…`: a runner names itself
 * `runner/<id>`; empty fields are left out, fractions rounded.
 */
export function prettyMessage(line: Record<string, unknown>): string {
  const isRunner = line.service === "runner" && line.runnerId !== undefined;
  const who = isRunner ? `runner/${String(line.runnerId)}` : String(line.service);
  const fields = Object.entries(line)
    .filter(([key, value]) => !PRETTY_HIDDEN.has(key) && value !== undefined && value !== "" && !(key === "runnerId" && isRunner))
    .map(([key, value]) => `${key}=${prettyValue(value)}`);
  return [who, String(line.event), ...fields].join(" ");
}

function prettyValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value !== null && typeof value === "object") {
    const error = value as { name?: unknown; message?: unknown };
    if (typeof error.message === "string" && typeof error.name === "string") return JSON.stringify(`${error.name}: ${error.message}`);
    return JSON.stringify(value);
  }
  if (typeof value === "number" && !Number.isInteger(value)) return String(Math.round(value * 10) / 10);
  return String(value);
}

/** Errors become {name, message} (JSON would print `{}`), bigints numbers. */
function serializeValues(fields: LogFields): LogFields {
  let copy: LogFields | undefined;
  for (const [key, value] of Object.entries(fields)) {
    let replaced: unknown = value;
    if (value instanceof Error) replaced = { name: value.name, message: value.message };
    else if (typeof value === "bigint") replaced = Number(value);
    else continue;
    copy ??= { ...fields };
    copy[key] = replaced;
  }
  return copy ?? fields;
}
