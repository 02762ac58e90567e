import type { WarrenEvent } from './events.js';
import type { Logger } from '@warren/core';
import { PolicyDeniedError, type Decision, type PolicyEnforcer } from '@warren/policy';

/** A question for the policy: may `principal` do `action` on `object`? */
export interface AuthorizationRequest {
  /** Casbin's `sub`: an agent (`shell-1`), a template (`template:shell`) or a person (`user:root`). */
  readonly principal: string;
  /** Casbin's `obj`: `task:<id>`, `agent:<name>`. */
  readonly object: string;
  /** Casbin's `act`: `assign`, `message`, `exec`, `stop`, ... */
  readonly action: string;
  /**
   * Answer a question asked before from the authorizer's cache, without asking the enforcer again
   * and without another audit row, as long as the policy has not changed since (the planner asks
   * the same (agent, task, assign) question every tick). Default false: ask and audit.
   */
  readonly memo?: boolean;
  /**
   * What the decision's audit row records besides `sub`, `act` and `rule` (an MCP tool call's
   * `tool` and `argsSha256`, say); plain JSON. Ignored for an answer taken from the memo.
   */
  readonly context?: Readonly<Record<string, string | number | boolean | null>>;
}

/** Options of {@link createAuthorizer}. */
export interface AuthorizerOptions {
  /**
   * The enforcer to ask, as the supervisor holds it (wrapped by `failClosed`, so that a decision
   * Casbin cannot make is a reported denial with no rule rather than an exception).
   */
  readonly policy: PolicyEnforcer;
  /**
   * Records one decision: called synchronously, once per decision the enforcer makes, with the
   * entry to append to the audit trail (inside the caller's transaction, if one is open).
   */
  readonly emit: (event: WarrenEvent & { readonly action: 'policy.decide' }) => void;
  readonly logger: Logger;
  /**
   * The most memoized decisions kept, an integer ≥ 0; the oldest is dropped first. Default 100,000
   * (about 20 MiB for requests of 50 characters).
   */
  readonly maxMemoized?: number;
}

/** Every authorization decision Warren makes goes through one authorizer. */
export interface Authorizer {
  /**
   * Asks the policy (or, with `memo`, the cache of earlier answers) whether the request is allowed.
   * Each decision the enforcer makes is audited through `emit` as exactly one row:
   * `{ actor: principal, action: 'policy.decide', object, decision: 'allow' | 'deny',
   *    details: { sub: principal, act: action, rule } }`.
   * @throws what `emit` throws (the audit trail failing); the enforcer's own failures are denials
   *   when the policy is wrapped by `failClosed`.
   */
  authorize(request: AuthorizationRequest): Decision;
  /**
   * {@link authorize}, throwing when the request is denied.
   * @returns the allowing decision.
   * @throws {PolicyDeniedError} `WARREN_POLICY_DENIED`, carrying the decision, when denied; the
   *   message is `message` when given, else `policy denies <principal> <action> on <object>`.
   */
  require(request: AuthorizationRequest, message?: string): Decision;
  /** The decisions the enforcer has made for this authorizer: equal to the audit rows it emitted. */
  readonly decisions: number;
  /**
   * Makes `principal` a member of `role` in the policy (`PolicyEnforcer.addRoleForSubject`) and
   * forgets only the memoized answers about `principal`, where a change of the policy forgets them
   * all. For principals no other subject inherits from (agent instances).
   * @throws {PolicyError} as `addRoleForSubject`.
   */
  grantRole(principal: string, role: string): void;
  /** Takes away every role given to `principal` (`PolicyEnforcer.removeSubject`), forgetting only its memoized answers. */
  dropPrincipal(principal: string): void;
}

/** Default of {@link AuthorizerOptions.maxMemoized}: room for a 20,000-task queue asked of a few templates. */
export const DEFAULT_MAX_MEMOIZED = 100_000;

/**
 * Makes the one place Warren decides and audits a request (assignment, message relay, exec,
 * operator command; later every API route and MCP tool). Memoized answers are dropped whenever the
 * policy's `revision` changes (reload, a role given or taken away), so a question asked after a
 * change is decided, and audited, again; a role given or taken through {@link Authorizer.grantRole}
 * or {@link Authorizer.dropPrincipal} drops only the answers about that principal.
 * @throws {RangeError} if `maxMemoized` is not an integer ≥ 0.
 */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const { policy, emit } = options;
  const maxMemoized = options.maxMemoized ?? DEFAULT_MAX_MEMOIZED;
  if (!Number.isInteger(maxMemoized) || maxMemoized < 0) throw new RangeError(`maxMemoized must be an integer ≥ 0, got ${maxMemoized}`);
  const log = options.logger.child({ component: 'authorize' });
  const memo = new Map<string, Decision>();
  /** The memo's keys by principal, so that a change of one principal's roles forgets only its answers. */
  const keysOf = new Map<string, Set<string>>();
  let memoRevision = policy.revision;
  const principalOf = new Map<string, string>();
  let decisions = 0;

  const decide = (principal: string, object: string, action: string, context?: AuthorizationRequest['context']): Decision => {
    const explained = policy.explain(principal, object, action);
    decisions += 1;
    const decision: Decision = { allowed: explained.allowed, principal, object, action, rule: explained.rule };
    emit({
      actor: principal,
      action: 'policy.decide',
      object,
      decision: decision.allowed ? 'allow' : 'deny',
      details: { ...context, sub: principal, act: action, rule: decision.rule },
    });
    log.debug({ sub: principal, obj: object, act: action, allowed: decision.allowed, rule: decision.rule }, 'policy decision');
    return decision;
  };

  const forgetKey = (key: string): void => {
    memo.delete(key);
    const principal = principalOf.get(key);
    principalOf.delete(key);
    if (principal !== undefined) keysOf.get(principal)?.delete(key);
  };

  /** Runs a change of `principal`'s roles, then forgets its answers only (the memo stays valid for the others). */
  const changePrincipal = (principal: string, change: () => void): void => {
    const current = policy.revision === memoRevision;
    change();
    for (const key of keysOf.get(principal) ?? []) {
      memo.delete(key);
      principalOf.delete(key);
    }
    keysOf.delete(principal);
    if (current) memoRevision = policy.revision;
  };

  const authorize = (request: AuthorizationRequest): Decision => {
    const { principal, object, action } = request;
    if (request.memo !== true) return decide(principal, object, action, request.context);
    if (policy.revision !== memoRevision) {
      memo.clear();
      keysOf.clear();
      principalOf.clear();
      memoRevision = policy.revision;
    }
    const key = `${principal.length}:${object.length}:${principal}${object}${action}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const decision = decide(principal, object, action);
    if (maxMemoized > 0) {
      if (memo.size >= maxMemoized) {
        const oldest = memo.keys().next();
        if (oldest.done !== true) forgetKey(oldest.value);
      }
      memo.set(key, decision);
      principalOf.set(key, principal);
      let keys = keysOf.get(principal);
      if (keys === undefined) keysOf.set(principal, (keys = new Set()));
      keys.add(key);
    }
    return decision;
  };

  return {
    authorize,
    require(request, message) {
      const decision = authorize(request);
      if (!decision.allowed) throw new PolicyDeniedError(decision, message);
      return decision;
    },
    get decisions() {
      return decisions;
    },
    grantRole(principal, role) {
      changePrincipal(principal, () => policy.addRoleForSubject(principal, role));
    },
    dropPrincipal(principal) {
      changePrincipal(principal, () => policy.removeSubject(principal));
    },
  };
}
