/**
 * The logging surface packages depend on. It is the subset of pino's API Warren uses, so a pino
 * logger satisfies it; packages never print on their own and take a `Logger` as an option.
 */
export interface Logger {
  trace(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** A logger that adds `bindings` to every line (pino `child`). */
  child(bindings: Record<string, unknown>): Logger;
}

/** A `Logger` that drops everything: the default when a caller passes none. */
export const silentLogger: Logger = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
