import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Account, AccountStore } from '@warren/accounts';
import type { SandboxSpec } from '@warren/sandbox';
import type { SupervisorConfig } from './config.js';
import type { AgentTemplate } from './templates.js';

/** Where the agent runner package is bound inside every sandbox. */
export const RUNNER_IN_SANDBOX = '/opt/warren/agent-runner';
/** Where `agents/bin` (the templates' programs) is bound inside every sandbox. */
export const AGENTS_BIN_IN_SANDBOX = '/opt/warren/agents/bin';

/**
 * Distinguishes one supervisor's sandboxes (cgroup names, hostnames) from another's on the same
 * host: `w` and the first 6 hex digits of sha256(state directory).
 */
export function instanceTag(stateDir: string): string {
  return `w${createHash('sha256').update(stateDir).digest('hex').slice(0, 6)}`;
}

/** What differs between an agent's runner sandbox and an exec into it. */
export interface AgentSpecInput {
  readonly config: SupervisorConfig;
  readonly accounts: AccountStore;
  readonly account: Account;
  readonly template: AgentTemplate;
  /** Name of the sandbox (cgroups, hostname); unique among live sandboxes on the host. */
  readonly sandboxName: string;
  readonly argv: readonly string[];
  /** Variables added to the agent's base environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The supervisor's environment, which the template's allow-list reads from. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** Host directory for this sandbox's generated files. */
  readonly runDir: string;
  readonly logPath: string;
  /** A host directory holding the gateway socket, bound read-only at /run/warren; none for exec. */
  readonly socketDir?: string;
}

/**
 * The sandbox spec of an agent: its uid/gid and home, a generated passwd/group, a clean
 * environment (the base variables, the template's allow-list, then `env`), the runner and
 * `agents/bin` bound read-only (when it exists), the template's read-only mounts under /repo, and its limits. Agent
 * runners and `warren exec` both start from it, so an exec runs exactly as the agent's tasks do.
 */
export function agentSandboxSpec(input: AgentSpecInput): SandboxSpec {
  const { config, account, template } = input;
  const home = `/home/${account.name}`;
  const env: Record<string, string> = {
    HOME: home,
    USER: account.name,
    LOGNAME: account.name,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    WARREN_AGENT: account.name,
  };
  for (const key of template.environment) {
    const value = input.hostEnv[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, input.env);
  return {
    name: input.sandboxName,
    uid: account.uid,
    gid: account.gid,
    homeHostPath: account.home,
    homePath: home,
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${input.accounts.passwdLine(account, { home })}\n`,
    group: `root:x:0:\n${input.accounts.groupLine(account)}\n`,
    argv: [...input.argv],
    env,
    readOnlyBinds: [
      { source: config.agentRunnerDir, target: RUNNER_IN_SANDBOX },
      // The templates' programs are optional: an agents folder without bin/ binds nothing there.
      ...(existsSync(join(config.agentsDir, 'bin')) ? [{ source: join(config.agentsDir, 'bin'), target: AGENTS_BIN_IN_SANDBOX }] : []),
      ...(input.socketDir ? [{ source: input.socketDir, target: '/run/warren' }] : []),
      ...template.mounts.map((m) => ({ source: resolve(config.root, m.source), target: m.target })),
    ],
    limits: template.resources,
    runDir: input.runDir,
    logPath: input.logPath,
    logMaxBytes: 8 * 1024 * 1024,
    ...(template.isolation === 'full' ? {} : { isolation: template.isolation }),
  };
}
