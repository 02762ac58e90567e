import { Util } from 'casbin';
import type { Enforcer } from 'casbin';

/** Default of {@link CompiledPolicy}'s subject bound: 1,024 subjects. */
export const DEFAULT_MAX_COMPILED_SUBJECTS = 1_024;

/** A test of one request value against one policy value, as a matcher function or operator. */
type FieldTest = (requestValue: string, policyValue: string) => boolean;

/**
 * One conjunct of the matcher, e.g. `keyMatch(r_obj, p_obj)`: `test(request[requestIndex],
 * rule[policyIndex])`. `requestIndex` is undefined for a test of the rule alone (`p_act == "*"`).
 */
interface Term {
  readonly requestIndex: number | undefined;
  readonly policyIndex: number;
  readonly test: FieldTest;
}

/** What one matching rule contributes, as Casbin's `privateEnforce` maps `p_eft` to an `Effect`. */
const RuleEffect = { allow: 'allow', deny: 'deny', indeterminate: 'indeterminate' } as const;
type RuleEffect = (typeof RuleEffect)[keyof typeof RuleEffect];

/** A `p` rule with its effect, in the order Casbin holds them. */
interface Rule {
  readonly fields: readonly string[];
  readonly effect: RuleEffect;
  /** Its place among the compiled rules. */
  readonly index: number;
}

/**
 * The policy effects Casbin's `DefaultEffectorStream` implements whose result does not depend on
 * the order of the rules, as the model holds them (`p.eft` escaped to `p_eft`).
 */
const ORDER_FREE_EFFECTS = {
  'some(where (p_eft == allow))': 'someAllow',
  '!some(where (p_eft == deny))': 'noDeny',
  'some(where (p_eft == allow)) && !some(where (p_eft == deny))': 'someAllowNoDeny',
} as const;
type OrderFreeEffect = (typeof ORDER_FREE_EFFECTS)[keyof typeof ORDER_FREE_EFFECTS];

/** Matcher functions the fast path calls exactly as Casbin's function map does: pure, never throwing. */
const PURE_FUNCTIONS: Readonly<Record<string, FieldTest>> = { keyMatch: Util.keyMatchFunc };

const CALL = /^(\w+)\(\s*r_(\w+)\s*,\s*p_(\w+)\s*\)$/;
const EQUALS = /^r_(\w+)\s*==\s*p_(\w+)$/;
const EQUALS_LITERAL = /^p_(\w+)\s*==\s*"([^"\\]*)"$/;

/**
 * A Casbin policy turned into per-subject rule lists. Built only for matchers that are a
 * conjunction of tests, each comparing one request field with one policy field (or a policy field
 * with a literal), drawn from: `r_x == p_y`, `p_y == "lit"`, a parenthesised `||` of those over
 * the same fields, `keyMatch(r_x, p_y)`, and a role function `g(r_x, p_y)` (`g`, `g2`, ... with
 * `_, _`) used once; and for the effects `some(where (p.eft == allow))`,
 * `!some(where (p.eft == deny))` and their conjunction. Shipped `policies/model.conf` is such a
 * model. A decision is then Casbin's own, computed the way `CoreEnforcer.privateEnforce` does
 * (casbin-node 5.51): every `p` rule whose terms all hold contributes its `eft` (`allow`, `deny`,
 * empty = allow), and the effect combines them as `DefaultEffectorStream`; role links are asked of
 * the enforcer's own role manager (`syncedHasLink`, with its hierarchy limit) and `keyMatch` is
 * `Util.keyMatchFunc`.
 *
 * Terms on the request's first field (`sub`) are evaluated once per subject, when the subject is
 * first asked about (about 40 µs for 1,000 rules, a tenth of one Casbin decision): its list holds
 * only the rules that can match it. The lists are bounded: at most `maxSubjects` of them, the
 * oldest dropped first; each is an array of references to the shared rules, so at most
 * `maxSubjects × P` references (8 bytes each) for a policy of `P` `p` rules (8 MiB for the
 * defaults and 1,000 rules), and far fewer in practice (a subject sees the rules of its roles).
 * {@link invalidate} drops them all; the owner calls it whenever a role link changes.
 */
export class CompiledPolicy {
  private readonly subjectTerms: readonly Term[];
  private readonly requestTerms: readonly Term[];
  private readonly subjects = new Map<string, readonly Rule[]>();

  private constructor(
    private readonly rules: readonly Rule[],
    terms: readonly Term[],
    private readonly effect: OrderFreeEffect,
    private readonly maxSubjects: number,
  ) {
    this.subjectTerms = terms.filter((t) => t.requestIndex === 0);
    this.requestTerms = terms.filter((t) => t.requestIndex !== 0 && t.requestIndex !== undefined);
  }

  /**
   * Compiles the policy `enforcer` holds now, reading its model (`r`, `p`, `e`, `m` and the role
   * managers of `g`, `g2`, ...). Rules are read once; role links are read when a subject is first
   * asked about after {@link invalidate}.
   * @param maxSubjects the most per-subject lists kept, an integer ≥ 1 (checked by the caller).
   * @returns the compiled policy, or why this model cannot be compiled (the caller then asks Casbin).
   */
  static compile(enforcer: Enforcer, maxSubjects: number = DEFAULT_MAX_COMPILED_SUBJECTS): CompiledPolicy | { reason: string } {
    const model = enforcer.getModel().model;
    const requestTokens = model.get('r')?.get('r')?.tokens ?? [];
    const policy = model.get('p')?.get('p');
    const effectText = model.get('e')?.get('e')?.value ?? '';
    const matcher = model.get('m')?.get('m')?.value ?? '';
    if (policy === undefined || requestTokens.length !== 3) return { reason: "the model has no 'p' or 'r' is not (sub, obj, act)" };
    const effect = (ORDER_FREE_EFFECTS as Readonly<Record<string, OrderFreeEffect>>)[effectText];
    if (effect === undefined) return { reason: `the effect '${effectText}' depends on rule order` };
    // Casbin evaluates the matcher once with empty policy values when there are no rules.
    if (policy.policy.length === 0) return { reason: 'the policy has no p rules' };
    if (policy.policy.some((rule) => rule.length !== policy.tokens.length)) return { reason: 'a p rule has a missing or extra field' };

    const terms = parseMatcher(matcher, requestTokens, policy.tokens, (name) => {
      const role = model.get('g')?.get(name);
      const rm = role?.rm;
      const hasLink = rm?.syncedHasLink?.bind(rm);
      if (role === undefined || role.value.split(',').length !== 2 || hasLink === undefined) return undefined;
      return (member, group) => hasLink(member, group);
    });
    if ('reason' in terms) return terms;

    const eftIndex = policy.tokens.indexOf('p_eft');
    const rules = policy.policy
      .map((fields) => ({ fields: [...fields], effect: ruleEffect(eftIndex === -1 ? undefined : fields[eftIndex]) }))
      .filter((rule) => terms.every((t) => t.requestIndex !== undefined || t.test('', rule.fields[t.policyIndex]!)))
      .map((rule, index): Rule => ({ ...rule, index }));
    return new CompiledPolicy(rules, terms, effect, maxSubjects);
  }

  /**
   * Whether the compiled policy allows `(sub, obj, act)`: the same answer as Casbin's
   * `enforceSync(sub, obj, act)` on the enforcer it was compiled from, as long as
   * {@link invalidate} was called after each change of its role links.
   */
  decide(sub: string, obj: string, act: string): boolean {
    let allowed = false;
    for (const rule of this.rulesOf(sub)) {
      if (!this.matches(rule, obj, act)) continue;
      switch (this.effect) {
        case 'someAllow':
          if (rule.effect === RuleEffect.allow) return true;
          break;
        case 'noDeny':
          if (rule.effect === RuleEffect.deny) return false;
          break;
        case 'someAllowNoDeny':
          if (rule.effect === RuleEffect.deny) return false;
          if (rule.effect === RuleEffect.allow) allowed = true;
          break;
      }
    }
    // Casbin's stream for `!some(deny)` starts allowing once a rule has been looked at, and there is one.
    return this.effect === 'noDeny' ? true : allowed;
  }

  /**
   * The `p` rule that decides `(sub, obj, act)`, as Casbin's `enforceExSync` reports it
   * (`CoreEnforcer.privateEnforce`'s explain index): for `some(allow)` the first matching allow rule;
   * for `!some(deny)` the first matching deny rule; for both, the first matching deny rule, or else
   * the last matching allow rule (Casbin records every allow until a deny ends the scan). Undefined
   * when no rule decided (the effect's default). `allowed` is {@link decide}'s answer.
   */
  explain(sub: string, obj: string, act: string): { allowed: boolean; fields: readonly string[] | undefined } {
    let lastAllow: Rule | undefined;
    for (const rule of this.rulesOf(sub)) {
      if (!this.matches(rule, obj, act)) continue;
      switch (this.effect) {
        case 'someAllow':
          if (rule.effect === RuleEffect.allow) return { allowed: true, fields: rule.fields };
          break;
        case 'noDeny':
          if (rule.effect === RuleEffect.deny) return { allowed: false, fields: rule.fields };
          break;
        case 'someAllowNoDeny':
          if (rule.effect === RuleEffect.deny) return { allowed: false, fields: rule.fields };
          if (rule.effect === RuleEffect.allow) lastAllow = rule;
          break;
      }
    }
    if (this.effect === 'noDeny') return { allowed: true, fields: undefined };
    return { allowed: lastAllow !== undefined, fields: lastAllow?.fields };
  }

  /**
   * The places of the rules that can match `sub`, e.g. `0,3,7`: two subjects with the same string
   * get the same {@link decide} and {@link explain} answer for every object and action (a decision
   * depends on the subject only through this list), until the next change of the role links.
   */
  classOf(sub: string): string {
    return this.rulesOf(sub)
      .map((rule) => rule.index)
      .join(',');
  }

  /** Drops every per-subject list; they are rebuilt from the role manager when next asked for. */
  invalidate(): void {
    this.subjects.clear();
  }

  /**
   * Drops the per-subject lists of the subjects `affected` picks (e.g. those whose role chain
   * passes through a subject whose links changed); the others stay. O(lists held).
   */
  invalidateSubjects(affected: (sub: string) => boolean): void {
    for (const sub of this.subjects.keys()) if (affected(sub)) this.subjects.delete(sub);
  }

  /** The number of per-subject lists held, at most the `maxSubjects` given to {@link compile}. */
  get subjectCount(): number {
    return this.subjects.size;
  }

  private matches(rule: Rule, obj: string, act: string): boolean {
    for (const term of this.requestTerms) {
      if (!term.test(term.requestIndex === 1 ? obj : act, rule.fields[term.policyIndex]!)) return false;
    }
    return true;
  }

  private rulesOf(sub: string): readonly Rule[] {
    let rules = this.subjects.get(sub);
    if (rules !== undefined) return rules;
    const verdicts = this.subjectTerms.map(() => new Map<string, boolean>());
    rules = this.rules.filter((rule) =>
      this.subjectTerms.every((term, i) => {
        const value = rule.fields[term.policyIndex]!;
        let verdict = verdicts[i]!.get(value);
        if (verdict === undefined) {
          verdict = term.test(sub, value);
          verdicts[i]!.set(value, verdict);
        }
        return verdict;
      }),
    );
    if (this.subjects.size >= this.maxSubjects) {
      const oldest = this.subjects.keys().next();
      if (oldest.done !== true) this.subjects.delete(oldest.value);
    }
    this.subjects.set(sub, rules);
    return rules;
  }
}

/** Casbin's reading of a matching rule's `eft` (casbin-node `CoreEnforcer.privateEnforce`). */
function ruleEffect(eft: string | undefined): RuleEffect {
  if (eft === undefined || eft === '' || eft === 'allow') return RuleEffect.allow;
  return eft === 'deny' ? RuleEffect.deny : RuleEffect.indeterminate;
}

/**
 * Reads an escaped Casbin matcher (`g(r_sub, p_sub) && keyMatch(r_obj, p_obj) && (r_act == p_act
 * || p_act == "*")`) into its conjuncts, or says why it is not one the fast path takes.
 * `roleFunction(name)` gives the test of a role definition (`g`, `g2`, ...), or undefined.
 */
function parseMatcher(
  matcher: string,
  requestTokens: readonly string[],
  policyTokens: readonly string[],
  roleFunction: (name: string) => FieldTest | undefined,
): Term[] | { reason: string } {
  const refuse = (why: string) => ({ reason: `matcher '${matcher}': ${why}` });
  if (/["'`]/.test(matcher.replace(/"[^"\\]*"/g, ''))) return refuse('it has quotes the fast path does not read');
  const disjuncts = splitTopLevel(matcher, '||');
  if (disjuncts === undefined || disjuncts.length !== 1) return refuse('it is not a conjunction of terms');
  const requestIndex = (name: string) => requestTokens.indexOf(`r_${name}`);
  const policyIndex = (name: string) => policyTokens.indexOf(`p_${name}`);
  const usedRoleFunctions = new Set<string>();

  /** One comparison, e.g. `keyMatch(r_obj, p_obj)`, as a term. */
  const atom = (text: string): Term | undefined => {
    const call = CALL.exec(text);
    const equals = EQUALS.exec(text);
    const literal = EQUALS_LITERAL.exec(text);
    if (call !== null) {
      const [, name = '', r = '', p = ''] = call;
      let test = PURE_FUNCTIONS[name];
      if (test === undefined) {
        test = roleFunction(name);
        // Casbin memoizes g per enforce call by its joined arguments: one use keeps that harmless.
        if (test === undefined || usedRoleFunctions.has(name)) return undefined;
        usedRoleFunctions.add(name);
      }
      return term(requestIndex(r), policyIndex(p), test);
    }
    if (equals !== null) return term(requestIndex(equals[1] ?? ''), policyIndex(equals[2] ?? ''), (a, b) => a === b);
    if (literal !== null) {
      const value = literal[2] ?? '';
      return term(undefined, policyIndex(literal[1] ?? ''), (_, b) => b === value);
    }
    return undefined;
  };

  const terms: Term[] = [];
  for (const conjunct of splitTopLevel(matcher, '&&') ?? []) {
    const alternatives = splitTopLevel(unwrap(conjunct), '||') ?? [];
    const atoms = alternatives.map((a) => atom(unwrap(a)));
    if (atoms.length === 0 || atoms.some((a) => a === undefined)) return refuse(`the term '${conjunct.trim()}' is not one the fast path reads`);
    const parts = atoms as Term[];
    if (parts.length === 1) {
      terms.push(parts[0]!);
      continue;
    }
    const fields = new Set(parts.map((p) => p.policyIndex));
    const requests = new Set(parts.map((p) => p.requestIndex).filter((i) => i !== undefined));
    if (fields.size !== 1 || requests.size > 1) return refuse(`the term '${conjunct.trim()}' compares more than one pair of fields`);
    terms.push({
      requestIndex: [...requests][0],
      policyIndex: parts[0]!.policyIndex,
      test: (a, b) => parts.some((p) => p.test(a, b)),
    });
  }
  if (terms.length === 0) return refuse('it has no terms');
  return terms;
}

/** A term over existing fields, or undefined when a field is not declared by `r` or `p`. */
function term(requestIndex: number | undefined, policyIndex: number, test: FieldTest): Term | undefined {
  if (requestIndex === -1 || policyIndex === -1) return undefined;
  return { requestIndex, policyIndex, test };
}

/**
 * Splits `text` at `operator` where it stands outside parentheses and string literals; undefined
 * when the parentheses do not balance.
 */
function splitTopLevel(text: string, operator: '&&' | '||'): string[] | undefined {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    if (quoted) continue;
    if (ch === '(') depth += 1;
    else if (ch === ')') depth -= 1;
    if (depth < 0) return undefined;
    if (depth === 0 && text.startsWith(operator, i)) {
      parts.push(text.slice(start, i));
      start = i + operator.length;
      i += operator.length - 1;
    }
  }
  if (depth !== 0 || quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/** `text` trimmed, without parentheses that enclose all of it: `((a == b))` → `a == b`. */
function unwrap(text: string): string {
  let inner = text.trim();
  while (inner.startsWith('(') && inner.endsWith(')') && closingParen(inner) === inner.length - 1) {
    inner = inner.slice(1, -1).trim();
  }
  return inner;
}

/** The index of the parenthesis closing the one `text` starts with, or -1. */
function closingParen(text: string): number {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    if (quoted) continue;
    if (ch === '(') depth += 1;
    else if (ch === ')') {
      depth -= 1;
      if (depth === 0) return i;
    }
  }
  return -1;
}
