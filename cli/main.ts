import { parseArgs } from "node:util";
import { ConfigError } from "../common/config/config-error.js";
import { parseSize } from "../common/parse-size.js";
import { forgeModel } from "../forge/forge-model.js";
import { adminCommand, describeError, generateCommand, modelsCommand, psCommand, watchCommand } from "./client-commands.js";
import { INTERNAL_SECRET_ENV } from "../common/internal-auth/internal-env.js";
import { InternalSecret } from "../common/internal-auth/internal-secret.js";
import { secretFromFile } from "../common/internal-auth/secret-file.js";
import { cliEnv } from "./cli-env.js";
import { gatewayTarget } from "./gateway-target.js";
import { gatewayCommand, placementCommand, serveCommand } from "./serve-commands.js";

const HELP: Record<string, string> = {
  main: `modelswap — serve many local LLMs on one memory-limited box

Usage: modelswap <command> [options]

Server:
  serve -c FILE        gateway + placement + runners from one config file
  placement -c FILE    placement alone (starts runners); prints its address
  gateway -c FILE --placement HOST:PORT   the public gateway alone
  (placement and gateway alone share --secret-file FILE: see README "Internal ports")

Client (gateway at --address, default $MODELSWAP_ADDRESS or 127.0.0.1:50051;
        key from --api-key or $MODELSWAP_API_KEY; TLS with --tls-ca FILE or $MODELSWAP_TLS_CA):
  generate -m MODEL "prompt"   stream a completion and print its timings
  chat -m MODEL "message"      one chat turn with the model's chat template
  models               list the catalog
  ps                   resident models, memory, queue, runners
  watch                stream residency events (loads, evictions, queue)
  load|unload|pin|unpin MODEL  admin actions

Tools:
  forge --size 200MB --out FILE   write a random-weight llama GGUF

'modelswap <command> --help' shows a command's options.`,
  serve: `modelswap serve -c FILE [--forge-missing] [--secret-file FILE]
  -c, --config FILE    YAML config (see README "Configuration")
  --forge-missing      forge a random-weight stand-in for model files that are missing
  --secret-file FILE   internal secret shared with extra gateways (default: a new one in memory)`,
  placement: `modelswap placement -c FILE --secret-file FILE [--listen HOST:PORT] [--forge-missing]
  --secret-file FILE   the internal secret its gateway holds too (made, mode 0600, if missing);
                       or $MODELSWAP_INTERNAL_SECRET
  --listen HOST:PORT   overrides placement.listen`,
  gateway: `modelswap gateway -c FILE --placement HOST:PORT --secret-file FILE
  --secret-file FILE   the internal secret placement holds (made, mode 0600, if missing);
                       or $MODELSWAP_INTERNAL_SECRET`,
  generate: `modelswap generate (-m MODEL | --task TASK) [options] "prompt"
  -m, --model NAME       model name or alias
  --task TASK            route by task instead of model
  -n, --max-tokens N     default 128
  --temperature T  --top-k K  --top-p P  --min-p P  --repeat-penalty R  --seed S
  --stop STRING          may repeat
  --ignore-eos           generate exactly max-tokens
  --timeout SECONDS      deadline for the whole request
  --address HOST:PORT    gateway address
  --api-key KEY          API key (prefer $MODELSWAP_API_KEY: arguments show in ps)
  --tls-ca FILE          PEM CA certificate of a TLS gateway (or $MODELSWAP_TLS_CA)`,
  chat: `modelswap chat -m MODEL [options as generate] "message"`,
  models: `modelswap models [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]`,
  ps: `modelswap ps [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]`,
  watch: `modelswap watch [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]`,
  load: `modelswap load MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  unload: `modelswap unload MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  pin: `modelswap pin MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  unpin: `modelswap unpin MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  forge: `modelswap forge --size SIZE --out FILE [--type q8_0|f16] [--seed N] [--tokenizer GGUF|builtin:byte]
  --size SIZE     e.g. 50MB, 200MB, 1.5GiB (file size within a few percent)
  --type          weight type, default q8_0
  --tokenizer     copy the tokenizer of this GGUF (default models/stories260K.gguf, else a byte tokenizer)`,
};

const options = {
  help: { type: "boolean", short: "h" },
  config: { type: "string", short: "c" },
  "forge-missing": { type: "boolean" },
  placement: { type: "string" },
  "secret-file": { type: "string" },
  listen: { type: "string" },
  supervised: { type: "boolean" },
  address: { type: "string" },
  "api-key": { type: "string" },
  "tls-ca": { type: "string" },
  model: { type: "string", short: "m" },
  task: { type: "string" },
  "max-tokens": { type: "string", short: "n" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  "ignore-eos": { type: "boolean" },
  timeout: { type: "string" },
  size: { type: "string" },
  out: { type: "string" },
  type: { type: "string" },
  tokenizer: { type: "string" },
} as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP.main + "\n");
    return 0;
  }
  if (!HELP[command]) {
    process.stderr.write(`unknown command "${command}"\n\n${HELP.main}\n`);
    return 2;
  }
  const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  if (values.help) {
    process.stdout.write(HELP[command] + "\n");
    return 0;
  }
  const target = () => gatewayTarget(values.address ?? cliEnv.gatewayAddress, values["api-key"] ?? cliEnv.apiKey, values["tls-ca"] ?? cliEnv.tlsCa);
  const number = (name: keyof typeof values): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number (got "${raw}")`);
    return value;
  };
  const requireConfig = () => {
    if (!values.config) throw new UsageError(`${command} needs -c FILE\n\n${HELP[command]}`);
    return values.config;
  };
  // The internal planes' secret: a file, the environment (serve -> placement), or (serve only) a new one.
  const internalSecret = (required: boolean): InternalSecret => {
    if (values["secret-file"]) return secretFromFile(values["secret-file"]);
    if (cliEnv.internalSecret) return InternalSecret.fromText(cliEnv.internalSecret, INTERNAL_SECRET_ENV);
    if (!required) return InternalSecret.random();
    throw new UsageError(
      `${command} needs the internal secret it shares with its ${command === "gateway" ? "placement" : "gateway"}: ` +
        `--secret-file FILE (made if missing; give both the same file) or $${INTERNAL_SECRET_ENV}; 'modelswap serve' does this by itself\n\n${HELP[command]}`,
    );
  };
  switch (command) {
    case "serve":
      await serveCommand(requireConfig(), values["forge-missing"] ?? false, internalSecret(false), cliEnv.quietLogs);
      return -1;
    case "placement":
      await placementCommand({
        configFile: requireConfig(),
        forgeMissing: values["forge-missing"] ?? false,
        quietLogs: cliEnv.quietLogs,
        internalSecret: internalSecret(true),
        listen: values.listen,
        supervised: values.supervised ?? false,
      });
      return -1;
    case "gateway":
      if (!values.placement) throw new UsageError(`gateway needs --placement HOST:PORT\n\n${HELP.gateway}`);
      await gatewayCommand(requireConfig(), values.placement, internalSecret(true), cliEnv.quietLogs);
      return -1;
    case "generate":
    case "chat": {
      const prompt = positionals.join(" ");
      if (!prompt) throw new UsageError(`${command} needs a prompt\n\n${HELP[command]}`);
      if (!values.model && !values.task) throw new UsageError(`${command} needs -m MODEL or --task TASK\n\n${HELP[command]}`);
      const timeout = number("timeout");
      return generateCommand(
        target(),
        {
          model: values.model ?? "",
          task: values.task ?? "",
          prompt,
          maxTokens: number("max-tokens") ?? 128,
          chat: command === "chat",
          timeoutMs: timeout === undefined ? undefined : timeout * 1000,
          sampling: {
            temperature: number("temperature"),
            topK: number("top-k"),
            topP: number("top-p"),
            minP: number("min-p"),
            repeatPenalty: number("repeat-penalty"),
            seed: number("seed"),
            stop: values.stop ?? [],
            ignoreEos: values["ignore-eos"],
          },
        },
        process.stdout,
        process.stderr,
      );
    }
    case "models":
      return modelsCommand(target(), process.stdout);
    case "ps":
      return psCommand(target(), process.stdout);
    case "watch":
      return watchCommand(target(), process.stdout, process.stderr);
    case "load":
    case "unload":
    case "pin":
    case "unpin": {
      const model = positionals[0];
      if (!model) throw new UsageError(`${command} needs a MODEL\n\n${HELP[command]}`);
      return adminCommand(target(), command, model, process.stdout);
    }
    case "forge": {
      if (!values.size || !values.out) throw new UsageError(`forge needs --size and --out\n\n${HELP.forge}`);
      const type = values.type ?? "q8_0";
      if (type !== "q8_0" && type !== "f16") throw new UsageError(`--type must be q8_0 or f16 (got "${type}")`);
      const started = performance.now();
      const forged = await forgeModel({ sizeBytes: parseSize(values.size), outPath: values.out, weightType: type, seed: number("seed"), tokenizerFrom: values.tokenizer });
      process.stdout.write(
        `wrote ${forged.path}: ${forged.bytes} bytes, ${forged.weightType}, ${forged.nLayer} layers, embedding ${forged.nEmbd}, ` +
          `${forged.nHead} heads, ff ${forged.nFf}, vocabulary ${forged.vocabSize} (${Math.round(performance.now() - started)} ms)\n`,
      );
      return 0;
    }
  }
  return 2;
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`${describeError(error)}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  },
);
