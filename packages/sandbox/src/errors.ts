import { MissingCapabilityError, WarrenError } from '@warren/core';

/**
 * The host cannot isolate agents: something {@link assertIsolation} needs is missing. It keeps the
 * code `WARREN_MISSING_CAPABILITY` of its base class; `missing` lists each missing piece (e.g.
 * `bwrap (/usr/bin/bwrap)`, `cgroup memory controller`) and `installHint` says how to get them.
 */
export class SandboxUnavailableError extends MissingCapabilityError {
  constructor(
    readonly missing: readonly string[],
    installHint: string,
  ) {
    super(`sandbox isolation (${missing.join(', ')})`, installHint);
  }
}

/**
 * A sandbox could not be set up or managed (code `WARREN_SANDBOX`): a spec field is invalid, a
 * cgroup cannot be made or written, the name is taken, the process cannot be started.
 * `sandbox` is the sandbox name; `path` the host file at fault, if any.
 */
export class SandboxError extends WarrenError {
  constructor(
    readonly sandbox: string,
    message: string,
    readonly path?: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_SANDBOX', `sandbox ${sandbox}: ${message}`, options);
  }
}

/**
 * A {@link SandboxSpec} field is invalid (code `WARREN_SANDBOX`). `field` is its dotted path in the
 * spec, e.g. `limits.cpuWeight` or `readOnlyBinds[2].target`.
 */
export class SandboxSpecError extends SandboxError {
  constructor(
    sandbox: string,
    readonly field: string,
    message: string,
  ) {
    super(sandbox, `spec field ${field}: ${message}`);
  }
}
