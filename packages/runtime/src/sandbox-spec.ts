import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SandboxSpec } from '@warren/sandbox';
import { RuntimeError } from './errors.js';
import type { AgentSpec } from './runtime.js';

/** Where the agent runner package is bound inside every sandbox. */
export const RUNNER_IN_SANDBOX = '/opt/warren/agent-runner';
/** Where `agents/bin` (the templates' programs) is bound inside every sandbox. */
export const AGENTS_BIN_IN_SANDBOX = '/opt/warren/agents/bin';
/** Where the coding-agent CLIs (`tools/agent-clis`) are bound inside every sandbox. */
export const AGENT_CLIS_IN_SANDBOX = '/opt/warren/clis';
/** The PATH of every agent; a bare program name given to an exec is looked up in it on the host (the sandbox sees the host's /usr). */
export const AGENT_PATH = '/usr/local/bin:/usr/bin:/bin';

/**
 * Distinguishes one supervisor's sandboxes (cgroup names, hostnames) from another's on the same
 * host: `w` and the first 6 hex digits of sha256(state directory).
 */
export function instanceTag(stateDir: string): string {
  return `w${createHash('sha256').update(stateDir).digest('hex').slice(0, 6)}`;
}

/** The host side of every sandbox: fixed when the bubblewrap runtime is made. */
export interface SandboxHostPaths {
  /** The agent runner package directory (holding `dist/main.js`), bound read-only at {@link RUNNER_IN_SANDBOX}. */
  readonly runnerDir: string;
  /** The templates' programs, bound read-only at {@link AGENTS_BIN_IN_SANDBOX} when the directory exists. */
  readonly agentsBinDir?: string;
  /** What relative mount sources are resolved against. */
  readonly root: string;
  /** The environment the spec's `environment` allow-list reads from. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** Host directories bound read-only into every sandbox, each only when its source exists. */
  readonly systemBinds?: readonly { readonly source: string; readonly target: string }[];
}

/** What differs between an agent's runner sandbox and an exec into it. */
export interface SandboxSpecInput {
  /** Name of the sandbox (cgroups, hostname); unique among live sandboxes on the host. */
  readonly sandboxName: string;
  readonly argv: readonly string[];
  /** Variables added last (the runner's settings); none for an exec. */
  readonly env: Readonly<Record<string, string>>;
  /** Host directory for this sandbox's generated files. */
  readonly runDir: string;
  readonly logPath: string;
  /** A host directory holding the agent channel's socket, bound read-only at /run/warren; none for exec. */
  readonly socketDir?: string;
}

/**
 * The sandbox spec of an agent: its uid/gid and home (at `/home/<name>` inside), a generated
 * passwd/group, a clean environment (the base variables, then the spec's allow-list read from
 * `host.hostEnv`, then the spec's `env`, then `input.env`), the runner and `agents/bin` bound
 * read-only (when it exists), the spec's read-only mounts, and its limits. Agent runners and execs
 * both start from it, so an exec runs exactly as the agent's tasks do.
 * @throws {RuntimeError} if a passwd field (template, shell) holds ':' or a newline.
 */
export function agentSandboxSpec(agent: AgentSpec, host: SandboxHostPaths, input: SandboxSpecInput): SandboxSpec {
  const home = homeInSandbox(agent.name);
  const shell = agent.shell ?? '/bin/sh';
  for (const [field, value] of [['template', agent.template], ['shell', shell], ['name', agent.name]] as const) {
    if (/[:\n]/.test(value)) throw new RuntimeError(agent.name, `${field} ${JSON.stringify(value)} holds ':' or a newline`, field);
  }
  const env: Record<string, string> = {
    HOME: home,
    USER: agent.name,
    LOGNAME: agent.name,
    PATH: AGENT_PATH,
    LANG: 'C.UTF-8',
    WARREN_AGENT: agent.name,
  };
  for (const key of agent.environment ?? []) {
    const value = host.hostEnv[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, agent.env ?? {}, input.env);
  return {
    name: input.sandboxName,
    uid: agent.uid,
    gid: agent.gid,
    homeHostPath: agent.homeDir,
    homePath: home,
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${agent.name}:x:${agent.uid}:${agent.gid}:Warren agent (${agent.template}):${home}:${shell}\n`,
    group: `root:x:0:\n${agent.name}:x:${agent.gid}:\n`,
    argv: [...input.argv],
    env,
    readOnlyBinds: [
      { source: host.runnerDir, target: RUNNER_IN_SANDBOX },
      // The templates' programs are optional: an agents folder without bin/ binds nothing there.
      ...(host.agentsBinDir !== undefined && existsSync(host.agentsBinDir) ? [{ source: host.agentsBinDir, target: AGENTS_BIN_IN_SANDBOX }] : []),
      ...(host.systemBinds ?? []).filter((b) => existsSync(b.source)),
      ...(input.socketDir ? [{ source: input.socketDir, target: '/run/warren' }] : []),
      ...(agent.mounts ?? []).map((m) => ({ source: resolve(host.root, m.source), target: m.target })),
    ],
    limits: agent.resources,
    runDir: input.runDir,
    logPath: input.logPath,
    logMaxBytes: 8 * 1024 * 1024,
    ...(agent.isolation === 'unsafe' ? { isolation: 'unsafe-no-cgroups' as const } : {}),
  };
}

/** The agent's home as its processes see it: `/home/<name>`. */
export function homeInSandbox(name: string): string {
  return `/home/${name}`;
}
