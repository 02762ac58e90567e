import { FunctionMap, type MatchingFunction } from 'casbin';
import { PolicyLoadError } from './errors.js';
import type { ParsedModel } from './model-file.js';
import type { PolicyRule } from './policy-file.js';

/**
 * The functions a matcher may call without registering them: Casbin's built-in function map
 * (`keyMatch` … `keyMatch5`, `keyGet`, `keyGet2`, `regexMatch`, `ipMatch`, `globMatch`) and
 * Casbin's ABAC `eval`. Role definitions (`g`, `g2`, ...) are added per model.
 */
function builtInFunctions(): string[] {
  // Casbin types getFunctions() as any; it returns the Map the functions were added to.
  const functions = FunctionMap.loadFunctionMap().getFunctions() as Map<string, MatchingFunction>;
  return [...functions.keys(), 'eval'];
}

/** Words followed by `(` that are operators of Casbin's expression language, not calls. */
const OPERATORS: ReadonlySet<string> = new Set(['in']);

/**
 * The names a matcher expression calls: identifiers directly followed by `(` (blanks allowed),
 * outside string literals and not after a `.` (a method of a value, such as `r.obj.startsWith(`).
 * `keyMatch(r.obj, p.obj) && g(r.sub, p.sub)` → `['keyMatch', 'g']`, in order, without repeats.
 */
export function calledFunctions(matcher: string): string[] {
  const code = matcher.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const names: string[] = [];
  for (const match of code.matchAll(/(^|[^.\w$])([A-Za-z_$][\w$]*)\s*\(/g)) {
    const name = match[2]!;
    if (!OPERATORS.has(name) && !names.includes(name)) names.push(name);
  }
  return names;
}

/**
 * Checks that every function the model's matchers call is known: Casbin's built-ins, the model's
 * role definitions (`g`, `g2`, ...) and `extra` (functions the caller registers). Casbin itself
 * evaluates a matcher lazily, so an unknown function behind `&&` is only noticed at the first
 * request that gets that far, as a failed decision.
 * @throws {PolicyLoadError} at the matcher's line, e.g.
 *   `policies/model.conf:29: unknown function 'fooMatch' in the matcher (known: g, keyMatch, …)`.
 */
export function checkMatcherFunctions(model: ParsedModel, extra: readonly string[] = []): void {
  const roles = [...model.definitions.values()].filter((d) => d.section === 'g').map((d) => d.key);
  const known = new Set([...roles, ...builtInFunctions(), ...extra]);
  for (const definition of model.definitions.values()) {
    if (definition.section !== 'm') continue;
    const unknown = calledFunctions(definition.value).find((name) => !known.has(name));
    if (unknown !== undefined) {
      throw new PolicyLoadError(
        model.path,
        definition.line,
        `unknown function '${unknown}' in the matcher${definition.key === 'm' ? '' : ` '${definition.key}'`} (known: ${[...known].sort().join(', ')})`,
      );
    }
  }
}

/** A policy that loads but very likely does not say what was meant; the load goes on. */
export interface PolicyWarning {
  readonly path: string;
  /** 1-based line of the policy file. */
  readonly line: number;
  /** The message, starting `path:line: `. */
  readonly message: string;
}

/**
 * Roles that can give nothing: each role a `g` line makes something a member of (its second field)
 * that no `p` line names as its subject and that no `g` line makes a member of another role. Such
 * a role is usually a misspelling (`g, template:shell, role:wrker`): its members get no
 * permissions through it. One warning per role, at the first `g` line that names it.
 */
export function policyWarnings(rules: readonly PolicyRule[], path: string): PolicyWarning[] {
  const granted = new Set<string>();
  const members = new Set<string>();
  for (const rule of rules) {
    if (rule.section === 'p') granted.add(rule.fields[0]!);
    else if (rule.section === 'g') members.add(rule.fields[0]!);
  }
  const warnings: PolicyWarning[] = [];
  const seen = new Set<string>();
  for (const rule of rules) {
    const role = rule.section === 'g' ? rule.fields[1] : undefined;
    if (role === undefined || seen.has(role) || granted.has(role) || members.has(role)) continue;
    seen.add(role);
    warnings.push({
      path,
      line: rule.line,
      message: `${path}:${rule.line}: ${role} has no permissions: no 'p' line names it and no 'g' line makes it a member of a role`,
    });
  }
  return warnings;
}
