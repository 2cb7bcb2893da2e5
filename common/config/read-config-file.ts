import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./config-error.js";
import type { Config } from "./config-types.js";
import { parseConfig, type ConfigEnv } from "./parse-config.js";

/**
 * Reads and validates a YAML config file; keys named by `key_env` come from `env`.
 * Throws ConfigError with a field path on mistakes.
 */
export function readConfigFile(file: string, env: ConfigEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`${file} is not valid YAML: ${(error as Error).message}`);
  }
  return parseConfig(document, path.dirname(path.resolve(file)), env);
}
