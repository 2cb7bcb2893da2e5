import { parseArgs } from "node:util";
import { status } from "@grpc/grpc-js";
import { ModelswapError } from "../common/errors.js";
import { ConfigError } from "../common/config/config-error.js";
import { parseSize } from "../common/parse-size.js";
import { forgeModel } from "../forge/forge-model.js";
import { adminCommand, describeError, generateCommand, modelsCommand, psCommand, watchCommand } from "./client-commands.js";
import { INTERNAL_SECRET_ENV } from "../common/internal-auth/internal-env.js";
import { InternalSecret } from "../common/internal-auth/internal-secret.js";
import { secretFromFile } from "../common/internal-auth/secret-file.js";
import { cliEnv, logOptions } from "./cli-env.js";
import { clusterPsCommand } from "./cluster-commands.js";
import { readConfigFile } from "../common/config/read-config-file.js";
import { gatewayTarget } from "./gateway-target.js";
import { LOG_FORMATS, type LogFormat } from "../common/logger.js";
import { pullCommand } from "./pull-command.js";
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
  ps --cluster         every box in the registry (etcd) and its models
  watch                stream residency events (loads, evictions, queue)
  load|unload|pin|unpin MODEL  admin actions

Models:
  pull SOURCE          download a model (hf:user/repo:quant or a URL) into the models folder
  forge --size 200MB --out FILE   write a random-weight llama GGUF

'modelswap <command> --help' shows a command's options.`,
  serve: `modelswap serve -c FILE [--forge-missing] [--secret-file FILE] [--log-format pretty|json]
  -c, --config FILE    YAML config (see README "Configuration")
  --forge-missing      forge a random-weight stand-in for model files that are missing
  --secret-file FILE   internal secret shared with extra gateways (default: a new one in memory)
  --log-format F       pretty (one readable line per event) or json (one JSON object per line);
                       default pretty on a terminal, json otherwise. Placement and runners follow.`,
  placement: `modelswap placement -c FILE --secret-file FILE [--listen HOST:PORT] [--forge-missing] [--log-format pretty|json]
  --secret-file FILE   the internal secret its gateway holds too (made, mode 0600, if missing);
                       or $MODELSWAP_INTERNAL_SECRET
  --listen HOST:PORT   overrides placement.listen`,
  gateway: `modelswap gateway -c FILE --placement HOST:PORT --secret-file FILE [--log-format pretty|json]
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
  ps: `modelswap ps [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]
modelswap ps --cluster [--etcd URL]... [-c FILE]
  --cluster            every registered box and its models, read from etcd
  --etcd URL           etcd endpoint, may repeat (default: -c FILE's cluster.etcd, else $MODELSWAP_ETCD or http://127.0.0.1:2379)`,
  watch: `modelswap watch [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]`,
  load: `modelswap load MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  unload: `modelswap unload MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  pin: `modelswap pin MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  unpin: `modelswap unpin MODEL [--address HOST:PORT] [--api-key KEY] [--tls-ca FILE]  (a key with the admin scope)`,
  pull: `modelswap pull SOURCE... [--dir DIR | -c FILE] [--sha256 HEX]
  SOURCE          hf:<user>/<repo>:<quant>      e.g. hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
                  hf:<user>/<repo>/<file>.gguf  one file of a repository (#branch optional)
                  https://host/path/model.gguf
  --dir DIR       where the file goes (default: the config's models_dir, else ./models)
  -c FILE         use the config's models_dir; without SOURCE, pull every catalog model whose
                  path is a source (path: hf:… or a URL)
  --sha256 HEX    refuse (and delete) the download unless its SHA-256 is HEX
  Interrupted downloads resume: run the same command again. HF_ENDPOINT points hf: at a mirror.`,
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
  "log-format": { type: "string" },
  dir: { type: "string" },
  sha256: { type: "string" },
  cluster: { type: "boolean" },
  etcd: { type: "string", multiple: true },
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
  const logFormat = (): LogFormat | undefined => {
    const raw = values["log-format"];
    if (raw === undefined) return undefined;
    if (!(LOG_FORMATS as readonly string[]).includes(raw)) throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(", ")} (got "${raw}")`);
    return raw as LogFormat;
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
      await serveCommand(requireConfig(), values["forge-missing"] ?? false, internalSecret(false), logOptions(logFormat()));
      return -1;
    case "placement":
      await placementCommand({
        configFile: requireConfig(),
        forgeMissing: values["forge-missing"] ?? false,
        log: logOptions(logFormat()),
        internalSecret: internalSecret(true),
        listen: values.listen,
        supervised: values.supervised ?? false,
      });
      return -1;
    case "gateway":
      if (!values.placement) throw new UsageError(`gateway needs --placement HOST:PORT\n\n${HELP.gateway}`);
      await gatewayCommand(requireConfig(), values.placement, internalSecret(true), logOptions(logFormat()));
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
      if (values.cluster) {
        const cluster = values.config ? readConfigFile(values.config).cluster : undefined;
        const endpoints = values.etcd ?? cluster?.etcd ?? cliEnv.etcd;
        for (const endpoint of endpoints) {
          if (!/^https?:\/\/[^/\s]+:\d{1,5}$/.test(endpoint)) throw new UsageError(`--etcd must be an endpoint like http://127.0.0.1:2379 (got "${endpoint}")`);
        }
        return clusterPsCommand(endpoints, cluster?.prefix ?? "modelswap/", process.stdout, process.stderr);
      }
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
    case "pull": {
      if (positionals.length === 0 && !values.config) throw new UsageError(`pull needs a SOURCE or -c FILE\n\n${HELP.pull}`);
      return pullCommand(
        {
          sources: positionals,
          configFile: values.config,
          dir: values.dir,
          sha256: values.sha256,
          progressBar: cliEnv.interactive,
          huggingFaceEndpoint: cliEnv.huggingFaceEndpoint,
        },
        process.stdout,
        process.stderr,
      );
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
    // 130: interrupted (Ctrl-C), as shells report it
    process.exitCode = error instanceof UsageError ? 2 : error instanceof ModelswapError && error.code === status.CANCELLED ? 130 : 1;
  },
);
