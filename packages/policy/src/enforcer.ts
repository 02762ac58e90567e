import { readFile } from 'node:fs/promises';
import { Enforcer, newEnforcer, newModelFromString } from 'casbin';
import type { Adapter, Model, RoleManager } from 'casbin';
import { silentLogger } from '@warren/core';
import type { Logger } from '@warren/core';
import { PolicyError, PolicyLoadError } from './errors.js';
import { parseModelFile } from './model-file.js';
import type { ParsedModel } from './model-file.js';
import { parsePolicyFile } from './policy-file.js';
import type { PolicyRule } from './policy-file.js';

/** Options of {@link loadPolicy}. */
export interface LoadPolicyOptions {
  /** The Casbin model, e.g. `policies/model.conf`. */
  readonly modelPath: string;
  /** The policy rules, e.g. `policies/policy.csv`. */
  readonly policyPath: string;
  /** Where loads and reloads are logged. Default: nowhere. */
  readonly logger?: Logger;
}

/** A decision with the request it answers, ready to be audited. */
export interface PolicyDecision {
  readonly allowed: boolean;
  readonly sub: string;
  readonly obj: string;
  readonly act: string;
}

/** The one authority Warren asks before it acts. */
export interface PolicyEnforcer {
  /**
   * Whether `sub` may `act` on `obj` (Casbin `enforceSync`), e.g. (`shell-1`, `task:count-lines`,
   * `assign`). @throws {PolicyError} if Casbin fails while evaluating the matcher.
   */
  enforce(sub: string, obj: string, act: string): boolean;
  /** {@link enforce}, returned with its request. @throws {PolicyError} as enforce. */
  decide(sub: string, obj: string, act: string): PolicyDecision;
  /**
   * Makes `sub` a member of `role` (a `g, sub, role` rule) in memory only: e.g. agent `shell-1`
   * joins `template:shell` when it starts. Never written to the policy file; kept across
   * {@link reload}. Adding a rule the file or an earlier call already holds changes nothing.
   * @throws {PolicyError} if the model has no role definition `g = _, _`.
   */
  addRoleForSubject(sub: string, role: string): void;
  /**
   * Drops every role given to `sub` by {@link addRoleForSubject} (e.g. when the agent stops).
   * Rules from the policy file stay. Unknown subjects are ignored.
   */
  removeSubject(sub: string): void;
  /**
   * Reads, checks and loads both files again; on success the new policy replaces the old one in one
   * step (with the in-memory roles re-applied), on error the old policy stays in force.
   * Concurrent calls run one after the other.
   * @throws {PolicyLoadError} as {@link loadPolicy}.
   */
  reload(): Promise<void>;
}

/** A Casbin adapter over rules already parsed and checked; it never writes. */
class CheckedRulesAdapter implements Adapter {
  constructor(private readonly rules: readonly PolicyRule[]) {}
  async loadPolicy(model: Model): Promise<void> {
    for (const rule of this.rules) model.addPolicy(rule.section, rule.ptype, [...rule.fields]);
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
  return { enforcer, fileRoles, rules: rules.length };
}

/** The model's role definition `g` and its role manager, when the model has `g = _, _`. */
function roleManagerOf(enforcer: Enforcer): RoleManager | undefined {
  const assertion = enforcer.getModel().model.get('g')?.get('g');
  if (assertion === undefined || assertion.value.split(',').length !== 2) return undefined;
  return assertion.rm;
}

/** Adds `g, sub, role` to a loaded policy in memory; a no-op when the rule is already there. */
function applyRole(loaded: Loaded, sub: string, role: string): void {
  const rm = roleManagerOf(loaded.enforcer);
  if (rm === undefined || typeof rm.syncedHasLink !== 'function') {
    throw new PolicyError(`cannot give '${sub}' the role '${role}': the model has no role definition 'g = _, _'`);
  }
  if (!loaded.enforcer.getModel().addPolicy('g', 'g', [sub, role])) return; // already there
  // The default role manager links synchronously although its API returns a promise.
  rm.addLink(sub, role).catch(() => undefined);
  if (!rm.syncedHasLink(sub, role)) {
    throw new PolicyError(`the role manager did not link '${sub}' to '${role}' synchronously`);
  }
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
 * model's path and the matcher's line. The files are only read; nothing is written back.
 * @throws {PolicyLoadError} with `path` and `line`.
 */
export async function loadPolicy(options: LoadPolicyOptions): Promise<PolicyEnforcer> {
  const { modelPath, policyPath } = options;
  const logger = (options.logger ?? silentLogger).child({ component: 'policy' });
  let current = await loadFiles(modelPath, policyPath);
  logger.info({ modelPath, policyPath, rules: current.rules }, 'policy loaded');
  /** Roles given in memory, by subject: re-applied after each reload. */
  const memoryRoles = new Map<string, Set<string>>();
  let reloading: Promise<void> = Promise.resolve();

  const enforce = (sub: string, obj: string, act: string): boolean => {
    try {
      return current.enforcer.enforceSync(sub, obj, act);
    } catch (error) {
      throw new PolicyError(`Casbin failed to decide (${sub}, ${obj}, ${act}): ${(error as Error).message}`, { cause: error });
    }
  };

  const reloadOnce = async (): Promise<void> => {
    let next: Loaded;
    try {
      next = await loadFiles(modelPath, policyPath);
      for (const [sub, roles] of memoryRoles) for (const role of roles) applyRole(next, sub, role);
    } catch (error) {
      logger.warn({ modelPath, policyPath, err: error }, 'policy reload failed; the previous policy stays in force');
      throw error;
    }
    current = next;
    logger.info({ modelPath, policyPath, rules: next.rules }, 'policy reloaded');
  };

  return {
    enforce,
    decide(sub, obj, act) {
      return { allowed: enforce(sub, obj, act), sub, obj, act };
    },
    addRoleForSubject(sub, role) {
      applyRole(current, sub, role);
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
      for (const role of roles) dropRole(current, sub, role);
      memoryRoles.delete(sub);
    },
    reload() {
      const run = reloading.then(reloadOnce, reloadOnce);
      reloading = run.catch(() => undefined);
      return run;
    },
  };
}
