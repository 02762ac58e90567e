import type { Account, AccountStore } from '@warren/accounts';
import { agentSandboxSpec as runtimeSandboxSpec } from '@warren/runtime';
import { join } from 'node:path';
import { agentSpecOf } from './agent-runtime.js';
import type { SupervisorConfig } from './config.js';
import type { AgentTemplate } from './templates.js';

// Moved to @warren/runtime; this adapter keeps today's callers building until they use the runtime.
export { AGENTS_BIN_IN_SANDBOX, instanceTag, RUNNER_IN_SANDBOX } from '@warren/runtime';

/** What differs between an agent's runner sandbox and an exec into it (the supervisor's terms). */
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

/** `@warren/runtime`'s `agentSandboxSpec` from the supervisor's config, account and template. */
export function agentSandboxSpec(input: AgentSpecInput) {
  const { config } = input;
  return runtimeSandboxSpec(
    agentSpecOf(input.account, input.template),
    { runnerDir: config.agentRunnerDir, agentsBinDir: join(config.agentsDir, 'bin'), root: config.root, hostEnv: input.hostEnv },
    { sandboxName: input.sandboxName, argv: input.argv, env: input.env, runDir: input.runDir, logPath: input.logPath, ...(input.socketDir ? { socketDir: input.socketDir } : {}) },
  );
}
