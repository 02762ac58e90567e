import { join } from 'node:path';
import type { Account } from '@warren/accounts';
import type { Broker } from '@warren/broker';
import type { Logger } from '@warren/core';
import { createBubblewrapRuntime, type AgentRuntime, type AgentSpec, type AgentStartSpec } from '@warren/runtime';
import type { SupervisorConfig } from './config.js';
import type { AgentTemplate } from './templates.js';

/**
 * The agent runtime of a supervisor or a `warren exec` on `config`: the bubblewrap driver with
 * the state directory, homes, runner and `agents/bin` of the config. `broker` is needed only to
 * start instances. Does no I/O.
 */
export function createAgentRuntime(
  config: SupervisorConfig,
  options: { readonly logger: Logger; readonly hostEnv: Readonly<Record<string, string | undefined>>; readonly broker?: Broker },
): AgentRuntime {
  return createBubblewrapRuntime({
    stateDir: config.stateDir,
    homeRoot: config.homeRoot,
    runnerDir: config.agentRunnerDir,
    agentsBinDir: join(config.agentsDir, 'bin'),
    root: config.root,
    logger: options.logger,
    hostEnv: options.hostEnv,
    ...(options.broker ? { broker: options.broker } : {}),
  });
}

/** Who `account` is and how its template confines it: what an instance and an exec share. */
export function agentSpecOf(account: Account, template: AgentTemplate): AgentSpec {
  return {
    name: account.name,
    template: account.template,
    uid: account.uid,
    gid: account.gid,
    homeDir: account.home,
    shell: account.shell,
    resources: template.resources,
    isolation: template.isolation === 'full' ? 'full' : 'unsafe',
    environment: template.environment,
    mounts: template.mounts,
  };
}

/**
 * The start spec of an instance of `account`: {@link agentSpecOf}, the template's capabilities,
 * runtime, concurrency and home quota, and a heartbeat every quarter of the heartbeat timeout (at
 * least 100 ms), so one lost or late heartbeat never looks like a dead agent.
 */
export function agentStartSpecOf(account: Account, template: AgentTemplate, config: Pick<SupervisorConfig, 'heartbeatTimeoutMs' | 'stateDir'>): AgentStartSpec {
  return {
    ...agentSpecOf(account, template),
    capabilities: template.capabilities,
    runner: {
      runtime: template.runtime,
      maxConcurrent: template.wipPerInstance,
      heartbeatIntervalMs: Math.max(100, Math.floor(config.heartbeatTimeoutMs / 4)),
    },
    homeQuotaBytes: template.homeQuotaBytes,
    logPath: join(config.stateDir, 'logs', `${account.name}.log`),
  };
}
