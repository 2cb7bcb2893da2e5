/** Structured JSON logs: one line per event on stderr. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** Adds fields (e.g. the active trace id) to every line; set by telemetry. */
export type LogEnricher = () => LogFields;
let enricher: LogEnricher = () => ({});
export function setLogEnricher(next: LogEnricher): void {
  enricher = next;
}

export function createLogger(service: string, base: LogFields = {}, quiet = false): Logger {
  const write = (level: string, event: string, fields?: LogFields) => {
    if (quiet && level !== "error") return;
    const line = { time: new Date().toISOString(), level, service, event, ...base, ...enricher(), ...fields };
    process.stderr.write(JSON.stringify(line, errorReplacer) + "\n");
  };
  return {
    info: (event, fields) => write("info", event, fields),
    warn: (event, fields) => write("warn", event, fields),
    error: (event, fields) => write("error", event, fields),
    child: (fields) => createLogger(service, { ...base, ...fields }, quiet),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return Number(value);
  return value;
}
