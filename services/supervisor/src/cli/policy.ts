import { existsSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { Command } from 'commander';
import { openAccounts } from '@warren/accounts';
import { PolicyError, loadPolicy, type PolicyExplanation } from '@warren/policy';
import { openDatabase } from '@warren/store';
import type { SupervisorConfig } from '../config.js';
import { loadTemplates } from '../templates.js';
import { addPathOptions, configFrom, type PathFlags } from './common.js';

/** The path options `warren policy` reads; the same flags as every other command's. */
/** What `warren policy check --json` prints. */
export interface PolicyCheckResult {
  readonly decision: 'allow' | 'deny';
  readonly sub: string;
  readonly obj: string;
  readonly act: string;
  /** The rule that decided, as the policy file writes it, or null when the effect's default answered. */
  readonly rule: string | null;
  /** The policy file and 1-based line holding `rule`, or null. */
  readonly file: string | null;
  readonly line: number | null;
  /** Why the policy could not decide (the request is then denied), or null. */
  readonly error: string | null;
  /** The roles given in memory first, as the running supervisor gives them to its agents. */
  readonly roles: readonly { readonly account: string; readonly role: string }[];
}

/**
 * Decides one request as a running supervisor would: loads the policy files of `config`, gives
 * every account in the state database (when there is one) its `template:<name>` role, and explains
 * the decision. Nothing is audited: this is a question, not an action.
 * @throws {PolicyLoadError} if a policy file is broken (naming file and line).
 */
export async function checkPolicy(config: SupervisorConfig, sub: string, obj: string, act: string): Promise<PolicyCheckResult> {
  const policyPath = join(config.policiesDir, 'policy.csv');
  const policy = await loadPolicy({ modelPath: join(config.policiesDir, 'model.conf'), policyPath });
  const roles: { account: string; role: string }[] = [];
  const dbPath = join(config.stateDir, 'warren.db');
  if (existsSync(dbPath)) {
    const db = openDatabase(dbPath);
    try {
      const accounts = openAccounts(db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
      for (const account of accounts.list()) roles.push({ account: account.name, role: `template:${account.template}` });
    } finally {
      db.close();
    }
  }
  for (const { account, role } of roles) policy.addRoleForSubject(account, role);
  // Each template that declares `role:` is a member of role:<role>, as the supervisor makes it at load.
  const templates = await loadTemplates(config.agentsDir, config.root).then((set) => [...set.templates.values()], () => []);
  for (const template of templates) if (template.policyRole !== null) policy.addRoleForSubject(`template:${template.name}`, `role:${template.policyRole}`);
  let explained: PolicyExplanation;
  let error: string | null = null;
  try {
    explained = policy.explain(sub, obj, act);
  } catch (failure) {
    if (!(failure instanceof PolicyError)) throw failure;
    // As the supervisor does (failClosed): a decision Casbin cannot make denies.
    explained = { allowed: false, rule: null, line: null };
    error = failure.message;
  }
  return {
    decision: explained.allowed ? 'allow' : 'deny',
    sub,
    obj,
    act,
    rule: explained.rule,
    file: explained.line === null ? null : policyPath,
    line: explained.line,
    error,
    roles,
  };
}

/** The text `warren policy check` prints: the decision, then the rule or why there is none. */
export function formatPolicyCheck(result: PolicyCheckResult, cwd: string = process.cwd()): string {
  const lines: string[] = [result.decision];
  if (result.error !== null) {
    lines.push(`the policy could not decide, so Warren denies: ${result.error}`);
  } else if (result.rule !== null) {
    // The file relative to the working directory when it lies inside it, else absolute.
    const shown = result.file === null ? null : relative(cwd, result.file);
    const path = shown === null || shown === '' || shown.startsWith('..') || isAbsolute(shown) ? result.file : shown;
    const where = path !== null && result.line !== null ? ` (${path}:${result.line})` : '';
    lines.push(`rule: ${result.rule}${where}`);
  } else {
    lines.push(`no rule matched; the default ${result.decision === 'allow' ? 'allows' : 'denies'}`);
  }
  const own = result.roles.filter(({ account }) => account === result.sub).map(({ role }) => role);
  if (own.length > 0) lines.push(`${result.sub} is a member of ${own.join(', ')} (its account)`);
  return `${lines.join('\n')}\n`;
}

/**
 * Adds `warren policy check <sub> <obj> <act> [--json]` to `program`: prints `allow` or `deny` and
 * the rule that matched (with its file and line), or that no rule matched and the default decides;
 * exit code 0 on allow, 1 on deny. Agents' `template:<name>` roles are given first for every
 * account in the state database, so `warren policy check shell-1 task:x assign` answers as the
 * running supervisor would.
 */
export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('ask the policy');
  addPathOptions(policy.command('check'))
    .argument('<sub>', 'who asks: an agent (shell-1), a template (template:shell) or a person (user:root)')
    .argument('<obj>', 'what about: task:<id>, agent:<name>')
    .argument('<act>', 'to do what: assign, message, exec, stop, ...')
    .description('explain the decision on one request, with the rule that matched; exit 0 on allow, 1 on deny')
    .option('--json', 'print JSON')
    .action(async (sub: string, obj: string, act: string, flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const result = await checkPolicy(config, sub, obj, act);
      process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : formatPolicyCheck(result));
      process.exitCode = result.decision === 'allow' ? 0 : 1;
    });
}
