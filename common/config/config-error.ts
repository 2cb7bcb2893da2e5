/** A configuration mistake; the message names the field path, e.g. `models[1].threads must be a positive integer`. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
