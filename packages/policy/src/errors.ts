import { WarrenError } from '@warren/core';
import type { Decision } from './decision.js';

/**
 * `model.conf` or `policy.csv` cannot be loaded. `path` is the file, `line` the 1-based line at
 * fault, or undefined when the error concerns the whole file (it cannot be read, a required section
 * is missing). The message starts with `path:line:`. Code `WARREN_POLICY_LOAD`.
 */
export class PolicyLoadError extends WarrenError {
  constructor(
    readonly path: string,
    readonly line: number | undefined,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_POLICY_LOAD', `${line === undefined ? path : `${path}:${line}`}: ${detail}`, options);
  }
}

/**
 * A request to the loaded policy cannot be carried out: a role is added while the model has no
 * `g = _, _` role definition, or Casbin fails while deciding. Code `WARREN_POLICY`.
 */
export class PolicyError extends WarrenError {
  constructor(message: string, options?: ErrorOptions) {
    super('WARREN_POLICY', message, options);
  }
}

/**
 * The policy denies a request. `decision` is the denial (principal, object, action, and the rule
 * that denied, or null when no rule allowed). The default message is
 * `policy denies <principal> <action> on <object>`. Code `WARREN_POLICY_DENIED`.
 */
export class PolicyDeniedError extends WarrenError {
  constructor(
    readonly decision: Decision,
    message = `policy denies ${decision.principal} ${decision.action} on ${decision.object}`,
    options?: ErrorOptions,
  ) {
    super('WARREN_POLICY_DENIED', message, options);
  }
}
