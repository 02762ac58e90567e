/**
 * @warren/policy: Casbin as the single authority for what agents and people may do. The model and
 * policy files are checked line by line before Casbin loads them, so a mistake is reported as
 * `policies/policy.csv:7: 'p' needs 4 fields (sub, obj, act, eft), got 2` rather than ignored.
 *
 * ```ts
 * import { loadPolicy } from '@warren/policy';
 * const policy = await loadPolicy({ modelPath: 'policies/model.conf', policyPath: 'policies/policy.csv' });
 * policy.addRoleForSubject('shell-1', 'template:shell'); // in memory, when the agent starts
 * policy.enforce('shell-1', 'task:count-lines', 'assign'); // true
 * policy.decide('user:alice', 'agent:shell-1', 'exec'); // { allowed: false, sub: 'user:alice', ... }
 * policy.explain('shell-1', 'task:count-lines', 'assign'); // { allowed: true, rule: 'p, role:worker, task:*, assign, allow', line: 10 }
 * policy.removeSubject('shell-1'); // when it stops
 * policy.fastPath; // 'compiled': Casbin's decisions, without evaluating every rule per request
 * ```
 */
export { loadPolicy, FastPath } from './enforcer.js';
export type { LoadPolicyOptions, PolicyDecision, PolicyEnforcer, PolicyExplanation } from './enforcer.js';
export type { Decision } from './decision.js';
export { PolicyLoadError, PolicyError, PolicyDeniedError } from './errors.js';
export { parseModelFile } from './model-file.js';
export type { ParsedModel, ModelDefinition } from './model-file.js';
export { parsePolicyFile } from './policy-file.js';
export { calledFunctions, checkMatcherFunctions, policyWarnings } from './checks.js';
export type { PolicyWarning } from './checks.js';
export type { PolicyRule } from './policy-file.js';
