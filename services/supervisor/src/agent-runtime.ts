import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { agentCliBinary, MIRRORS_IN_SANDBOX } from '@warren/agent-runner';
import { AGENT_LLM_COMMAND, AGENT_LLM_DIR_IN_SANDBOX } from '@warren/agent-llm';
import { AGENT_SDK_DIR_IN_SANDBOX, agentSdkDistDir } from '@warren/agent-sdk';
import type { Account } from '@warren/accounts';
import type { Broker } from '@warren/broker';
import type { Logger } from '@warren/core';
import {
  AGENT_CLIS_IN_SANDBOX,
  createBubblewrapRuntime,
  type AgentRuntime,
  type AgentSpec,
  type AgentStartSpec,
  type ChannelService,
} from '@warren/runtime';
import type { SupervisorConfig } from './config.js';
import type { AgentCliKind, AgentTemplate } from './templates.js';

/**
 * The agent runtime of a supervisor or a `warren exec` on `config`: the bubblewrap driver with
 * the state directory, homes, runner and `agents/bin` of the config, and read-only in every sandbox
 * the coding-agent CLIs, the built-in loop, the agent SDK (`/opt/warren/agent-sdk`) and the mirrors. `broker` is needed only to
 * start instances. Does no I/O.
 */
export function createAgentRuntime(
  config: SupervisorConfig,
  options: {
    readonly logger: Logger;
    readonly hostEnv: Readonly<Record<string, string | undefined>>;
    readonly broker?: Broker;
    /** Served beside each agent's channel (the LLM gateway). */
    readonly channelServices?: readonly ChannelService[];
  },
): AgentRuntime {
  return createBubblewrapRuntime({
    systemBinds: [
      { source: config.agentClisDir, target: AGENT_CLIS_IN_SANDBOX },
      { source: config.agentLlmDir, target: AGENT_LLM_DIR_IN_SANDBOX },
      // The agent SDK's `warren-bus` command (the runner puts its bin/ first on the task's PATH).
      { source: agentSdkDistDir(), target: AGENT_SDK_DIR_IN_SANDBOX },
      { source: join(config.stateDir, 'repos'), target: MIRRORS_IN_SANDBOX },
    ],
    ...(options.channelServices ? { channelServices: options.channelServices } : {}),
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

/**
 * Where the native binary of `kind` is under `agentClisDir` (as `scripts/agent-clis.sh` installs
 * it, see `agentCliBinary` of `@warren/agent-runner`): the host path and the path inside a sandbox
 * (the folder is bound at /opt/warren/clis), or undefined when it is not there.
 */
export function agentCliHostBinary(kind: AgentCliKind, agentClisDir: string): { readonly host: string; readonly sandbox: string } | undefined {
  let relativePath: string;
  try {
    relativePath = join('node_modules', agentCliBinary(kind));
  } catch {
    return undefined;
  }
  const host = join(agentClisDir, relativePath);
  return existsSync(host) ? { host, sandbox: join(AGENT_CLIS_IN_SANDBOX, relativePath) } : undefined;
}

/**
 * What the runner of `name` is told about its runtime (`WARREN_RUNTIME`): `shell` and `exec` as the
 * template says; a coding-agent CLI with its binary inside the sandbox (a path that names the
 * missing CLI when it is not installed: the runtime health check holds such templates), provider,
 * model (the agent's override first) and turn limit; the built-in loop with its program. Warren's
 * MCP tools are offered (through the gateway) only when the API is served (`mcpServed`): to the
 * built-in loop always, to a CLI when its template asks (`runtime.mcp`).
 */
export function runnerRuntimeOf(template: AgentTemplate, name: string, agentClisDir: string, mcpServed = false): unknown {
  const r = template.runtime;
  const model = template.agentOverrides[name]?.model;
  switch (r.kind) {
    case 'shell':
    case 'exec':
      return r;
    case 'llm':
      return { kind: 'llm', program: AGENT_LLM_COMMAND, provider: r.provider, model: model ?? r.model, maxTurns: r.maxTurns, ...(mcpServed ? { mcp: true } : {}) };
    default:
      return {
        kind: r.kind,
        binary: agentCliHostBinary(r.kind, agentClisDir)?.sandbox ?? `${AGENT_CLIS_IN_SANDBOX}/not-installed/${r.kind}`,
        provider: r.provider,
        ...((model ?? r.model) !== null ? { model: model ?? r.model } : {}),
        ...(r.maxTurns !== null ? { maxTurns: r.maxTurns } : {}),
        ...(r.mcp && mcpServed ? { mcp: true } : {}),
      };
  }
}

/** Who `account` is and how its template confines it (with the agent's own resource overrides): what an instance and an exec share. */
export function agentSpecOf(account: Account, template: AgentTemplate): AgentSpec {
  const overrides = template.agentOverrides[account.name]?.resources;
  return {
    name: account.name,
    template: account.template,
    uid: account.uid,
    gid: account.gid,
    homeDir: account.home,
    shell: account.shell,
    resources: overrides ? { ...template.resources, ...overrides } : template.resources,
    isolation: template.isolation === 'full' ? 'full' : 'unsafe',
    environment: template.environment,
    mounts: template.mounts,
  };
}

/**
 * How much longer an idle agent may stay silent than a busy one, and its runner's heartbeats are
 * apart: a thousand idle agents beating every quarter of the timeout woke the supervisor two
 * hundred times a second. Twice, not more: an agent given a task counts as busy from then, while
 * its runner beats at the idle rate until the task reaches it, so an idle interval stays half the
 * busy timeout.
 */
export const IDLE_HEARTBEAT_FACTOR = 2;

/**
 * The start spec of an instance of `account`: {@link agentSpecOf}, the template's capabilities,
 * runtime, concurrency and home quota, and a heartbeat every quarter of the heartbeat timeout (at
 * least 100 ms), so one lost or late heartbeat never looks like a dead agent; while idle, every
 * {@link IDLE_HEARTBEAT_FACTOR} times that (the idle agent's timeout is as much longer).
 */
export function agentStartSpecOf(account: Account, template: AgentTemplate, config: Pick<SupervisorConfig, 'heartbeatTimeoutMs' | 'stateDir' | 'agentClisDir' | 'http'>): AgentStartSpec {
  const heartbeatIntervalMs = Math.max(100, Math.floor(config.heartbeatTimeoutMs / 4));
  return {
    ...agentSpecOf(account, template),
    capabilities: template.capabilities,
    runner: {
      runtime: runnerRuntimeOf(template, account.name, config.agentClisDir, config.http !== undefined),
      maxConcurrent: template.wipPerInstance,
      heartbeatIntervalMs,
      idleHeartbeatIntervalMs: IDLE_HEARTBEAT_FACTOR * heartbeatIntervalMs,
      // One task per instance: the bubblewrap driver runs a shell or exec task with no runner.
      perTask: template.lifecycle === 'autodelete',
    },
    homeQuotaBytes: template.homeQuotaBytes,
    logPath: join(config.stateDir, 'logs', `${account.name}.log`),
  };
}
