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

/**
 * A child of `parent` with `bindings` (as `parent.child(bindings)` gives) that is made only when
 * something is first logged through it. For loggers kept per agent: a supervisor with a thousand
 * agents kept a few thousand pino children (about a kilobyte each) that nearly never log.
 */
export function lazyChildLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  return new LazyChildLogger(() => parent.child(bindings));
}

class LazyChildLogger implements Logger {
  private made: Logger | undefined;

  constructor(private readonly make: () => Logger) {}

  private get log(): Logger {
    return (this.made ??= this.make());
  }

  trace(...args: [obj: object, msg?: string]): void {
    this.log.trace(...args);
  }

  debug(...args: [obj: object, msg?: string]): void {
    this.log.debug(...args);
  }

  info(...args: [obj: object, msg?: string]): void {
    this.log.info(...args);
  }

  warn(...args: [obj: object, msg?: string]): void {
    this.log.warn(...args);
  }

  error(...args: [obj: object, msg?: string]): void {
    this.log.error(...args);
  }

  /** A lazy child of this one: neither is made until one logs. */
  child(bindings: Record<string, unknown>): Logger {
    return new LazyChildLogger(() => this.log.child(bindings));
  }
}
