import type { Logger } from '@warren/core';
import type { PolicyDecision, PolicyEnforcer, PolicyExplanation } from '@warren/policy';
import type { EmitEvent } from './event-bus.js';
import type { WarrenEvent } from './events.js';

/** A decision Casbin could not make: the request and what went wrong. */
export interface FailedDecision {
  readonly sub: string;
  readonly obj: string;
  readonly act: string;
  readonly error: Error;
}

/**
 * Wraps `policy` so that a decision that throws (Casbin failing while it evaluates the matcher) is
 * a denial instead of an exception (from `explain`: a denial with no rule): the request is refused and `onFailure` is told, so the caller
 * can log and audit it, once per distinct request and message. Everything else is `policy`'s own.
 * @param onFailure called synchronously, before the denial is returned; must not throw.
 */
export function failClosed(policy: PolicyEnforcer, onFailure: (failed: FailedDecision) => void): PolicyEnforcer {
  const reported = new Set<string>();
  const fail = (sub: string, obj: string, act: string, error: unknown): void => {
    const failure = error instanceof Error ? error : new Error(String(error));
    const key = `${sub}\u0000${obj}\u0000${act}\u0000${failure.message}`;
    if (!reported.has(key)) {
      reported.add(key);
      onFailure({ sub, obj, act, error: failure });
    }
  };
  const enforce = (sub: string, obj: string, act: string): boolean => {
    try {
      return policy.enforce(sub, obj, act);
    } catch (error) {
      fail(sub, obj, act, error);
      return false;
    }
  };
  const explain = (sub: string, obj: string, act: string): PolicyExplanation => {
    try {
      return policy.explain(sub, obj, act);
    } catch (error) {
      fail(sub, obj, act, error);
      return { allowed: false, rule: null, line: null };
    }
  };
  /** A subject whose class cannot be read is asked about on its own (and each of its decisions fails closed). */
  const decisionClass = (sub: string): string | undefined => {
    try {
      return policy.decisionClass(sub);
    } catch {
      return undefined;
    }
  };
  return {
    enforce,
    explain,
    decisionClass,
    decide: (sub, obj, act): PolicyDecision => ({ allowed: enforce(sub, obj, act), sub, obj, act }),
    get revision() {
      return policy.revision;
    },
    get fastPath() {
      return policy.fastPath;
    },
    get warnings() {
      return policy.warnings;
    },
    addRoleForSubject: (sub, role) => policy.addRoleForSubject(sub, role),
    removeSubject: (sub) => policy.removeSubject(sub),
    reload: () => policy.reload(),
  };
}

/**
 * Reports a failed decision as the `policy.error` event (object: the request's `obj`; details:
 * `sub`, `act`, `message`; logged as an error) through `emit` once the event bus exists, and only
 * logs it (the same line) before.
 */
export function reportFailedDecision(log: Logger, emit: EmitEvent | undefined, failed: FailedDecision): void {
  const event = policyErrorEvent(failed);
  if (emit) emit(event);
  else log.error({ sub: failed.sub, obj: failed.obj, act: failed.act, reason: failed.error.message }, 'the policy could not decide; the request is denied');
}

/** The `policy.error` event of a decision Casbin could not make. */
export function policyErrorEvent(failed: FailedDecision): WarrenEvent<'policy.error'> {
  const { sub, obj, act, error } = failed;
  return { actor: 'supervisor', action: 'policy.error', object: obj, details: { sub, act, message: error.message } };
}
