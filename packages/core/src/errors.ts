/**
 * The base of every error Warren throws on purpose. Callers branch on `code`, never on the message.
 *
 * Codes are listed with their meaning and remedy in `packages/core/README.md`.
 */
export class WarrenError extends Error {
  /** A stable, machine-readable code such as `WARREN_TASK_PARSE`. */
  readonly code: `WARREN_${string}`;

  constructor(code: `WARREN_${string}`, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A configuration value (option, environment variable, file) is invalid.
 * `source` names where it came from: a file path, an option (`--state-dir`) or a variable (`NATS_URL`).
 */
export class ConfigError extends WarrenError {
  constructor(
    readonly source: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_CONFIG', `${source}: ${message}`, options);
  }
}

/** A program or machine capability Warren needs is missing; the message says how to install it. */
export class MissingCapabilityError extends WarrenError {
  constructor(
    readonly capability: string,
    readonly installHint: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_MISSING_CAPABILITY', `${capability} is missing: ${installHint}`, options);
  }
}
