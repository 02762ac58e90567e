import { readFile } from 'node:fs/promises';
import { DefaultRoleManager, Enforcer, newEnforcer, newModelFromString } from 'casbin';
import type { Adapter, Model, RoleManager } from 'casbin';
import { silentLogger } from '@warren/core';
import type { Logger } from '@warren/core';
import { CompiledPolicy, DEFAULT_MAX_COMPILED_SUBJECTS } from './compiled-policy.js';
import { DecisionCache, DEFAULT_MAX_CACHED_DECISIONS } from './decision-cache.js';
import { PolicyError, PolicyLoadError } from './errors.js';
import { parseModelFile } from './model-file.js';
import type { ParsedModel } from './model-file.js';
import { parsePolicyFile } from './policy-file.js';
import { checkMatcherFunctions, policyWarnings } from './checks.js';
import type { PolicyWarning } from './checks.js';
import type { PolicyRule } from './policy-file.js';

/** Options of {@link loadPolicy}. */
export interface LoadPolicyOptions {
  /** The Casbin model, e.g. `policies/model.conf`. */
  readonly modelPath: string;
  /** The policy rules, e.g. `policies/policy.csv`. */
  readonly policyPath: string;
  /** Where loads and reloads are logged. Default: nowhere. */
  readonly logger?: Logger;
  /**
   * How decisions are made fast; Casbin stays the authority and every path answers as its
   * `enforceSync` would (see {@link FastPath}). `'auto'` (default) compiles the policy when the
   * model allows it and otherwise caches Casbin's decisions; `'cache'` always caches; `'off'` asks
   * Casbin every time.
   */
  readonly fastPath?: 'auto' | typeof FastPath.cache | typeof FastPath.off;
  /**
   * The most decisions the `cache` path keeps, an integer ≥ 0 (the oldest is dropped first; 0
   * caches nothing; requests over 512 characters in all are never cached). Default 10,000: at most
   * about 13 MiB, about 3 MiB for requests of 50 characters.
   */
  readonly maxCachedDecisions?: number;
  /**
   * The most subjects the `compiled` path keeps a rule list for, an integer ≥ 1 (the oldest is
   * dropped first, and rebuilt in about 40 µs for 1,000 rules if asked for again). Default 1,024.
   * Each list holds one 8-byte reference per `p` rule that can match the subject, so at most
   * `maxCompiledSubjects × P × 8` bytes for `P` `p` rules (8 MiB for 1,000 rules).
   */
  readonly maxCompiledSubjects?: number;
}

/**
 * The path that answers {@link PolicyEnforcer.enforce}; each gives Casbin's decision.
 * - `compiled`: the policy's `p` rules, filtered per subject through Casbin's role manager when the
 *   subject is first asked about, then matched per request (`CompiledPolicy`). Used for models whose
 *   matcher is a conjunction of equality, `keyMatch` and role tests with an order-free effect, such
 *   as `policies/model.conf`. Requests never seen before are as fast as repeated ones.
 * - `cache`: Casbin `enforceSync`, with its answers kept per request (`DecisionCache`): repeated
 *   requests are fast, new ones cost a Casbin evaluation.
 * - `off`: Casbin `enforceSync` for every request.
 * A reload empties the compiled per-subject lists and the cache (the new policy gets a fast path
 * of its own). {@link PolicyEnforcer.addRoleForSubject} and {@link PolicyEnforcer.removeSubject}
 * change the `g` links of one subject `s`, which can change only the decisions about `s` and about
 * the subjects whose role chain passes through `s` (`g(r.sub, …)` follows links away from the
 * request's subject): on the compiled path they drop just those subjects' lists (an agent
 * instance, which no subject inherits from, drops its own list only); on the cache path they drop
 * just those subjects' decisions when every role test of the matcher is `g(r.sub, …)`, and every
 * decision otherwise. Both drop everything when the role manager is not Casbin's default one
 * without matching functions (`loadPolicy` never adds any).
 */
export const FastPath = { compiled: 'compiled', cache: 'cache', off: 'off' } as const;
/** One of {@link FastPath}'s values. */
export type FastPath = (typeof FastPath)[keyof typeof FastPath];

/** A decision with the request it answers, ready to be audited. */
export interface PolicyDecision {
  readonly allowed: boolean;
  readonly sub: string;
  readonly obj: string;
  readonly act: string;
}

/**
 * A decision with the rule that made it, as Casbin's `enforceExSync` explains it: for Warren's
 * effect (`some(where (p.eft == allow)) && !some(where (p.eft == deny))`) the first matching deny
 * rule, or else the last matching allow rule; for `some(where (p.eft == allow))` the first matching
 * allow rule; for `!some(where (p.eft == deny))` the first matching deny rule.
 */
export interface PolicyExplanation {
  readonly allowed: boolean;
  /**
   * The `p` rule that decided, as the policy file writes it (fields joined by `, `), e.g.
   * `p, role:worker, task:*, assign, allow`; null when no rule decided and the effect's default
   * answered (deny, or allow for `!some(where (p.eft == deny))`).
   */
  readonly rule: string | null;
  /** The 1-based line of the policy file holding {@link rule} (its first copy), or null. */
  readonly line: number | null;
}

/** The one authority Warren asks before it acts. */
export interface PolicyEnforcer {
  /**
   * Whether `sub` may `act` on `obj`, e.g. (`shell-1`, `task:count-lines`, `assign`): Casbin's
   * `enforceSync` answer, given through the {@link fastPath}. Every call returns a decision; the
   * caller audits each one. @throws {PolicyError} if Casbin fails while evaluating the matcher.
   */
  enforce(sub: string, obj: string, act: string): boolean;
  /** The path that answers {@link enforce} for the policy in force; may change on {@link reload}. */
  readonly fastPath: FastPath;
  /**
   * What the policy in force very likely gets wrong although it loads (each also logged as a
   * warning): roles that give nothing, see `policyWarnings`.
   */
  readonly warnings: readonly PolicyWarning[];
  /** {@link enforce}, returned with its request. @throws {PolicyError} as enforce. */
  decide(sub: string, obj: string, act: string): PolicyDecision;
  /**
   * {@link enforce}'s decision with the rule that made it, as Casbin's `enforceExSync` reports it
   * (see {@link PolicyExplanation}); every {@link fastPath} gives Casbin's rule.
   * @throws {PolicyError} if Casbin fails while evaluating the matcher.
   */
  explain(sub: string, obj: string, act: string): PolicyExplanation;
  /**
   * A key of the subject's decisions: two subjects with the same key get the same {@link enforce}
   * and {@link explain} answer for every object and action under the policy in force (e.g. two
   * agents of one template that no rule names), so a caller asking many subjects the same questions
   * asks one per key. On the compiled path, the places of the `p` rules that can match `sub`
   * (`CompiledPolicy.classOf`); undefined on the other paths (ask each subject). Valid until the
   * policy next changes ({@link revision}).
   * @throws {PolicyError} if Casbin's role manager fails.
   */
  decisionClass(sub: string): string | undefined;
  /**
   * A number that grows by at least one with every change of the policy in force: a successful
   * {@link reload}, {@link addRoleForSubject}, {@link removeSubject} (each call, even one that
   * finds nothing to change). Callers that keep decisions drop them when it changes, or, for a role
   * change they make themselves, only those about the subjects it can affect (see {@link FastPath}).
   * The enforcer's own fast path drops only those on a role change. Starts at 0.
   */
  readonly revision: number;
  /**
   * Makes `sub` a member of `role` (a `g, sub, role` rule) in memory only: e.g. agent `shell-1`
   * joins `template:shell` when it starts. Never written to the policy file; kept across
   * {@link reload}. Adding a rule the file or an earlier call already holds changes nothing. The
   * fast path's cached decisions and per-subject lists of `sub` and of the subjects inheriting
   * from it are dropped (see {@link FastPath}).
   * @throws {PolicyError} if the model has no role definition `g = _, _`.
   */
  addRoleForSubject(sub: string, role: string): void;
  /**
   * Drops every role given to `sub` by {@link addRoleForSubject} (e.g. when the agent stops).
   * Rules from the policy file stay. Unknown subjects are ignored. The fast path's cached decisions
   * and per-subject lists of `sub` and of the subjects inheriting from it are dropped.
   */
  removeSubject(sub: string): void;
  /**
   * Reads, checks and loads both files again; on success the new policy replaces the old one in one
   * step (with the in-memory roles re-applied, and a fast path of its own), on error the old policy
   * stays in force.
   * Concurrent calls run one after the other.
   * @throws {PolicyLoadError} as {@link loadPolicy}.
   */
  reload(): Promise<void>;
}

/** A decision and the fields of the `p` rule that made it (undefined when none did). */
interface RuleExplanation {
  readonly allowed: boolean;
  readonly fields: readonly string[] | undefined;
}

/** Casbin's `enforceExSync` answer as a {@link RuleExplanation}: an empty explain means no rule. */
function casbinExplain(enforcer: Enforcer, sub: string, obj: string, act: string): RuleExplanation {
  const [allowed, fields] = enforcer.enforceExSync(sub, obj, act);
  return { allowed, fields: fields.length === 0 ? undefined : fields };
}

/** Answers requests for one loaded policy through one {@link FastPath}. */
interface Decider {
  readonly fastPath: FastPath;
  /** Why the policy is not compiled, when `fastPath` is `cache` under `'auto'`. */
  readonly reason: string | undefined;
  /** Casbin's decision on `(sub, obj, act)`; throws what `enforceSync` throws. */
  decide(sub: string, obj: string, act: string): boolean;
  /** Casbin's decision and explaining rule's fields (undefined for none); throws what `enforceExSync` throws. */
  explain(sub: string, obj: string, act: string): RuleExplanation;
  /** See {@link PolicyEnforcer.decisionClass}. */
  decisionClass(sub: string): string | undefined;
  /**
   * Drops what is derived from the policy's role links: the decisions and lists of the subjects
   * `affected` picks, or everything when it is undefined. Called on every role change.
   */
  invalidate(affected?: (sub: string) => boolean): void;
}

/** The decider of `options.fastPath` over `enforcer`, whose policy must not change without `invalidate()`. */
function createDecider(enforcer: Enforcer, options: LoadPolicyOptions): Decider {
  const mode = options.fastPath ?? 'auto';
  if (mode === FastPath.off) {
    return {
      fastPath: FastPath.off,
      reason: undefined,
      decide: (sub, obj, act) => enforcer.enforceSync(sub, obj, act),
      explain: (sub, obj, act) => casbinExplain(enforcer, sub, obj, act),
      decisionClass: () => undefined,
      invalidate() {},
    };
  }
  let reason: string | undefined;
  if (mode === 'auto') {
    const compiled = CompiledPolicy.compile(enforcer, options.maxCompiledSubjects ?? DEFAULT_MAX_COMPILED_SUBJECTS);
    if (compiled instanceof CompiledPolicy) {
      return {
        fastPath: FastPath.compiled,
        reason: undefined,
        decide: (sub, obj, act) => compiled.decide(sub, obj, act),
        explain: (sub, obj, act) => compiled.explain(sub, obj, act),
        decisionClass: (sub) => compiled.classOf(sub),
        invalidate: (affected) => (affected === undefined ? compiled.invalidate() : compiled.invalidateSubjects(affected)),
      };
    }
    reason = compiled.reason;
  }
  // Casbin's explained answers: enforceExSync costs what enforceSync does.
  const bySubject = rolesTestOnlyTheSubject(enforcer);
  const cache = new DecisionCache<RuleExplanation>(options.maxCachedDecisions ?? DEFAULT_MAX_CACHED_DECISIONS);
  const explain = (sub: string, obj: string, act: string): RuleExplanation => {
    let explained = cache.get(sub, obj, act);
    if (explained === undefined) {
      explained = casbinExplain(enforcer, sub, obj, act);
      cache.set(sub, obj, act, explained);
    }
    return explained;
  };
  return {
    fastPath: FastPath.cache,
    reason,
    decide: (sub, obj, act) => explain(sub, obj, act).allowed,
    explain,
    decisionClass: () => undefined,
    invalidate: (affected) => (affected === undefined || !bySubject ? cache.clear() : cache.deleteSubjects(affected)),
  };
}

/**
 * Whether a decision depends on the role links `g` only through links followed away from the
 * request's subject: every call of `g` in the matcher has the request's first field (`r_sub`) as
 * its first argument, and the matcher evaluates no rule text (`eval`). False when unsure.
 */
function rolesTestOnlyTheSubject(enforcer: Enforcer): boolean {
  const model = enforcer.getModel().model;
  const subject = model.get('r')?.get('r')?.tokens[0];
  const matcher = model.get('m')?.get('m')?.value;
  if (subject === undefined || matcher === undefined || /\beval\s*\(/.test(matcher)) return false;
  const calls = matcher.match(/(?<![\w.])g\s*\([^,)]*/g) ?? [];
  return calls.every((call) => call.slice(call.indexOf('(') + 1).trim() === subject);
}

/** @throws {RangeError} naming the option when `value` is given and is not an integer ≥ `min`. */
function checkLimit(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
  }
}

/**
 * A Casbin adapter over rules already parsed and checked; it never writes. Rules are appended as
 * Casbin's own file loader appends them (`PolicyLoader.loadPolicyLine`): in file order, a repeated
 * rule kept, so the rule Casbin's explain names is the one it names for the file.
 */
class CheckedRulesAdapter implements Adapter {
  constructor(private readonly rules: readonly PolicyRule[]) {}
  async loadPolicy(model: Model): Promise<void> {
    for (const rule of this.rules) model.model.get(rule.section)?.get(rule.ptype)?.policy.push([...rule.fields]);
  }
  async savePolicy(): Promise<boolean> {
    throw new Error('not implemented');
  }
  async addPolicy(): Promise<void> {
    throw new Error('not implemented');
  }
  async removePolicy(): Promise<void> {
    throw new Error('not implemented');
  }
  async removeFilteredPolicy(): Promise<void> {
    throw new Error('not implemented');
  }
}

interface Loaded {
  readonly enforcer: Enforcer;
  /** `sub\0role` of the `g` rules that came from the policy file. */
  readonly fileRoles: ReadonlySet<string>;
  readonly rules: number;
  readonly warnings: readonly PolicyWarning[];
  /** The first line of each `p` rule, by its fields joined with NUL. */
  readonly ruleLines: ReadonlyMap<string, number>;
}

const roleKey = (sub: string, role: string): string => `${sub}\u0000${role}`;

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new PolicyLoadError(path, undefined, `cannot read: ${(error as Error).message}`, { cause: error });
  }
}

/** The line of the definition a Casbin model error is about, when its message says. */
function lineOfCasbinModelError(model: ParsedModel, message: string): number | undefined {
  if (/matcher/i.test(message)) return model.definitions.get('m')?.line;
  if (/effect/i.test(message)) return model.definitions.get('e')?.line;
  if (/request/i.test(message)) return model.definitions.get('r')?.line;
  return undefined;
}

async function loadFiles(modelPath: string, policyPath: string): Promise<Loaded> {
  const [modelText, policyText] = await Promise.all([readText(modelPath), readText(policyPath)]);
  const parsed = parseModelFile(modelText, modelPath);
  const rules = parsePolicyFile(policyText, policyPath, parsed);
  checkMatcherFunctions(parsed);

  let model: Model;
  try {
    model = newModelFromString(modelText);
  } catch (error) {
    const message = (error as Error).message;
    throw new PolicyLoadError(modelPath, lineOfCasbinModelError(parsed, message), `Casbin rejects the model: ${message}`, {
      cause: error,
    });
  }
  let enforcer: Enforcer;
  try {
    enforcer = await newEnforcer(model, new CheckedRulesAdapter(rules));
  } catch (error) {
    throw new PolicyLoadError(policyPath, undefined, `Casbin cannot load the policy: ${(error as Error).message}`, {
      cause: error,
    });
  }
  enforcer.enableAutoSave(false);
  // The matcher is compiled on first use; one request now turns a broken matcher into a load error.
  try {
    enforcer.enforceSync('', '', '');
  } catch (error) {
    const matcher = parsed.definitions.get('m');
    throw new PolicyLoadError(modelPath, matcher?.line, `Casbin cannot evaluate the matcher '${matcher?.value}': ${(error as Error).message}`, {
      cause: error,
    });
  }
  const fileRoles = new Set(rules.filter((r) => r.ptype === 'g' && r.fields.length === 2).map((r) => roleKey(r.fields[0]!, r.fields[1]!)));
  const ruleLines = new Map<string, number>();
  for (const rule of rules) {
    const key = rule.fields.join('\u0000');
    if (rule.ptype === 'p' && !ruleLines.has(key)) ruleLines.set(key, rule.line);
  }
  return { enforcer, fileRoles, rules: rules.length, warnings: policyWarnings(rules, policyPath), ruleLines };
}

/** The model's role definition `g` and its role manager, when the model has `g = _, _`. */
function roleManagerOf(enforcer: Enforcer): RoleManager | undefined {
  const assertion = enforcer.getModel().model.get('g')?.get('g');
  if (assertion === undefined || assertion.value.split(',').length !== 2) return undefined;
  return assertion.rm;
}

/**
 * The subjects whose decisions a change of `sub`'s own `g` links can change: `sub` and those whose
 * role chain reaches it (`syncedHasLink(s, sub)`, which also bounds chains as Casbin does: a chain
 * through a changed link starts with a chain to `sub`). Asked before a link is removed, after one is
 * added (a shortest chain to `sub` never leaves `sub`, so both give the same set). Undefined (drop
 * everything) unless the role manager is Casbin's default one without matching functions.
 */
function subjectsAffected(loaded: Loaded, sub: string): ((s: string) => boolean) | undefined {
  const rm = roleManagerOf(loaded.enforcer);
  if (!(rm instanceof DefaultRoleManager)) return undefined;
  const flags = rm as unknown as Record<string, unknown>;
  if (flags['hasPattern'] === true || flags['hasDomainPattern'] === true || flags['hasDomainHierarchy'] === true) return undefined;
  const links = loaded.enforcer.getModel().model.get('g')?.get('g')?.policy ?? [];
  if (!links.some((link) => link[1] === sub)) return (s) => s === sub;
  return (s) => s === sub || rm.syncedHasLink(s, sub);
}

/** Adds `g, sub, role` to a loaded policy in memory; a no-op (false) when the rule is already there. */
function applyRole(loaded: Loaded, sub: string, role: string): boolean {
  const rm = roleManagerOf(loaded.enforcer);
  if (rm === undefined || typeof rm.syncedHasLink !== 'function') {
    throw new PolicyError(`cannot give '${sub}' the role '${role}': the model has no role definition 'g = _, _'`);
  }
  if (!loaded.enforcer.getModel().addPolicy('g', 'g', [sub, role])) return false; // already there
  // The default role manager links synchronously although its API returns a promise.
  rm.addLink(sub, role).catch(() => undefined);
  if (!rm.syncedHasLink(sub, role)) {
    throw new PolicyError(`the role manager did not link '${sub}' to '${role}' synchronously`);
  }
  return true;
}

/** Removes an in-memory `g, sub, role` rule; rules that came from the policy file stay. */
function dropRole(loaded: Loaded, sub: string, role: string): void {
  if (loaded.fileRoles.has(roleKey(sub, role))) return;
  const rm = roleManagerOf(loaded.enforcer);
  if (rm === undefined) return;
  if (loaded.enforcer.getModel().removePolicy('g', 'g', [sub, role])) {
    rm.deleteLink(sub, role).catch(() => undefined);
  }
}

/**
 * Loads a Casbin model and policy and returns the enforcer Warren decides every action with.
 * Both files are checked before Casbin sees them, so mistakes are reported with file and line
 * (`parseModelFile`, `parsePolicyFile`): a missing section, an unknown policy type, a line with the
 * wrong number of fields. Errors Casbin still raises (an invalid matcher) are wrapped with the
 * model's path and the matcher's line, and a matcher that calls a function Casbin does not know is
 * refused at its line (`checkMatcherFunctions`); roles that give nothing are logged as warnings
 * (`policyWarnings`). The files are only read; nothing is written back.
 * Decisions go through the fast path `options.fastPath` asks for ({@link FastPath}).
 * @throws {PolicyLoadError} with `path` and `line`.
 * @throws {RangeError} if `maxCachedDecisions` or `maxCompiledSubjects` is out of range.
 */
export async function loadPolicy(options: LoadPolicyOptions): Promise<PolicyEnforcer> {
  const { modelPath, policyPath } = options;
  checkLimit('maxCachedDecisions', options.maxCachedDecisions, 0);
  checkLimit('maxCompiledSubjects', options.maxCompiledSubjects, 1);
  const logger = (options.logger ?? silentLogger).child({ component: 'policy' });
  let current = await loadFiles(modelPath, policyPath);
  let decider = createDecider(current.enforcer, options);
  logger.info({ modelPath, policyPath, rules: current.rules, fastPath: decider.fastPath, fastPathReason: decider.reason }, 'policy loaded');
  for (const warning of current.warnings) logger.warn({ path: warning.path, line: warning.line }, warning.message);
  /** Roles given in memory, by subject: re-applied after each reload. */
  const memoryRoles = new Map<string, Set<string>>();
  let reloading: Promise<void> = Promise.resolve();

  let revision = 0;

  const enforce = (sub: string, obj: string, act: string): boolean => {
    try {
      return decider.decide(sub, obj, act);
    } catch (error) {
      throw new PolicyError(`Casbin failed to decide (${sub}, ${obj}, ${act}): ${(error as Error).message}`, { cause: error });
    }
  };

  const explain = (sub: string, obj: string, act: string): PolicyExplanation => {
    let explained: RuleExplanation;
    try {
      explained = decider.explain(sub, obj, act);
    } catch (error) {
      throw new PolicyError(`Casbin failed to decide (${sub}, ${obj}, ${act}): ${(error as Error).message}`, { cause: error });
    }
    const { allowed, fields } = explained;
    if (fields === undefined) return { allowed, rule: null, line: null };
    return { allowed, rule: `p, ${fields.join(', ')}`, line: current.ruleLines.get(fields.join('\u0000')) ?? null };
  };

  const reloadOnce = async (): Promise<void> => {
    let next: Loaded;
    let nextDecider: Decider;
    try {
      next = await loadFiles(modelPath, policyPath);
      for (const [sub, roles] of memoryRoles) for (const role of roles) applyRole(next, sub, role);
      nextDecider = createDecider(next.enforcer, options);
    } catch (error) {
      logger.warn({ modelPath, policyPath, err: error }, 'policy reload failed; the previous policy stays in force');
      throw error;
    }
    current = next;
    decider = nextDecider;
    revision += 1;
    logger.info({ modelPath, policyPath, rules: next.rules, fastPath: decider.fastPath, fastPathReason: decider.reason }, 'policy reloaded');
    for (const warning of next.warnings) logger.warn({ path: warning.path, line: warning.line }, warning.message);
  };

  return {
    enforce,
    get fastPath() {
      return decider.fastPath;
    },
    get warnings() {
      return current.warnings;
    },
    get revision() {
      return revision;
    },
    decide(sub, obj, act) {
      return { allowed: enforce(sub, obj, act), sub, obj, act };
    },
    explain,
    decisionClass(sub) {
      try {
        return decider.decisionClass(sub);
      } catch (error) {
        throw new PolicyError(`Casbin failed to read the roles of '${sub}': ${(error as Error).message}`, { cause: error });
      }
    },
    addRoleForSubject(sub, role) {
      let added: boolean | undefined;
      try {
        added = applyRole(current, sub, role);
      } finally {
        // Unsure what a failed change left: drop everything.
        if (added === undefined) decider.invalidate();
        else if (added) decider.invalidate(subjectsAffected(current, sub));
        revision += 1;
      }
      let roles = memoryRoles.get(sub);
      if (roles === undefined) {
        roles = new Set();
        memoryRoles.set(sub, roles);
      }
      roles.add(role);
    },
    removeSubject(sub) {
      const roles = memoryRoles.get(sub);
      if (roles === undefined) return;
      // Who inherits from `sub` is asked before its links go.
      decider.invalidate(subjectsAffected(current, sub));
      for (const role of roles) dropRole(current, sub, role);
      memoryRoles.delete(sub);
      revision += 1;
    },
    reload() {
      const run = reloading.then(reloadOnce, reloadOnce);
      reloading = run.catch(() => undefined);
      return run;
    },
  };
}
