import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as runtime from '../src/index.js';
import { agentSandboxSpec, instanceTag, RuntimeError, type AgentSpec } from '../src/index.js';

// The sandbox spec the bubblewrap driver builds from a runtime-neutral agent spec: pure, no root.

const dir = mkdtempSync(join(tmpdir(), 'warren-runtime-spec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const binDir = join(dir, 'bin');
mkdirSync(binDir);

const agent: AgentSpec = {
  name: 'shell-1',
  template: 'shell',
  uid: 1_900_000_001,
  gid: 1_900_000_001,
  homeDir: '/var/lib/warren/home/shell/shell-1',
  resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 256, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 64 * 2 ** 20 },
  environment: ['GIT_AUTHOR', 'UNSET_ONE', 'PATH'],
  env: { EXTRA: 'x', LANG: 'en_US.UTF-8' },
  mounts: [{ source: 'docs', target: '/repo/docs' }, { source: '/srv/data', target: '/data' }],
};
const host = { runnerDir: '/srv/warren/packages/agent-runner', agentsBinDir: binDir, root: '/srv/warren', hostEnv: { GIT_AUTHOR: 'ann', PATH: '/host/bin' } };
const input = { sandboxName: 'w1a2b3c-shell-1', argv: ['/usr/bin/node', '/opt/warren/agent-runner/dist/main.js'], env: { WARREN_MAX_CONCURRENT: '2', EXTRA: 'y' }, runDir: '/var/lib/warren/run/agents/shell-1', logPath: '/var/lib/warren/logs/shell-1.log', socketDir: '/var/lib/warren/run/agents/shell-1/socket' };

describe('agentSandboxSpec', () => {
  it('gives the agent its uid, home at /home/<name>, passwd and group lines, and a clean environment in order: base, allow-list, spec, runner', () => {
    const spec = agentSandboxSpec(agent, host, input);
    expect(spec).toMatchObject({ name: 'w1a2b3c-shell-1', uid: 1_900_000_001, gid: 1_900_000_001, homeHostPath: agent.homeDir, homePath: '/home/shell-1', limits: agent.resources, logMaxBytes: 8 * 1024 * 1024 });
    expect(spec.passwd).toBe('root:x:0:0:root:/root:/usr/sbin/nologin\nshell-1:x:1900000001:1900000001:Warren agent (shell):/home/shell-1:/bin/sh\n');
    expect(spec.group).toBe('root:x:0:\nshell-1:x:1900000001:\n');
    expect(spec.env).toEqual({
      HOME: '/home/shell-1',
      USER: 'shell-1',
      LOGNAME: 'shell-1',
      PATH: '/host/bin',
      LANG: 'en_US.UTF-8',
      WARREN_AGENT: 'shell-1',
      GIT_AUTHOR: 'ann',
      EXTRA: 'y',
      WARREN_MAX_CONCURRENT: '2',
    });
    expect(spec.isolation).toBeUndefined();
  });

  it('binds the runner, agents/bin when it exists, the channel socket and the mounts (relative ones from root), read-only', () => {
    expect(agentSandboxSpec(agent, host, input).readOnlyBinds).toEqual([
      { source: '/srv/warren/packages/agent-runner', target: '/opt/warren/agent-runner' },
      { source: binDir, target: '/opt/warren/agents/bin' },
      { source: '/var/lib/warren/run/agents/shell-1/socket', target: '/run/warren' },
      { source: '/srv/warren/docs', target: '/repo/docs' },
      { source: '/srv/data', target: '/data' },
    ]);
    const { socketDir: _none, ...execInput } = input;
    const binds = agentSandboxSpec(agent, { ...host, agentsBinDir: join(dir, 'missing') }, execInput).readOnlyBinds ?? [];
    expect(binds.map((b) => b.target)).toEqual(['/opt/warren/agent-runner', '/repo/docs', '/data']);
  });

  it('binds the system directories that exist (the CLIs, the agent loop), after agents/bin', () => {
    const systemBinds = [
      { source: binDir, target: '/opt/warren/clis' },
      { source: join(dir, 'missing'), target: '/opt/warren/agent-llm' },
    ];
    const binds = agentSandboxSpec(agent, { ...host, systemBinds }, input).readOnlyBinds ?? [];
    expect(binds.map((b) => b.target)).toEqual(['/opt/warren/agent-runner', '/opt/warren/agents/bin', '/opt/warren/clis', '/run/warren', '/repo/docs', '/data']);
  });

  it.each([
    ['full', undefined],
    ['unsafe', 'unsafe-no-cgroups'],
  ] as const)('maps isolation %s to the sandbox isolation %s', (isolation, expected) => {
    expect(agentSandboxSpec({ ...agent, isolation }, host, input).isolation).toBe(expected);
  });

  it.each([
    ['template', { template: 'a:b' }],
    ['shell', { shell: '/bin/sh\nroot' }],
  ] as const)('refuses a %s that would break the passwd line, naming the field', (field, change) => {
    expect(() => agentSandboxSpec({ ...agent, ...change }, host, input)).toThrow(RuntimeError);
    expect(() => agentSandboxSpec({ ...agent, ...change }, host, input)).toThrow(expect.objectContaining({ code: 'WARREN_RUNTIME', field }));
  });

  it('tags a state directory with w and six hex digits of its sha256', () => {
    expect(instanceTag('/var/lib/warren')).toMatch(/^w[0-9a-f]{6}$/);
    expect(instanceTag('/var/lib/warren')).toBe(instanceTag('/var/lib/warren'));
    expect(instanceTag('/var/lib/warren')).not.toBe(instanceTag('/var/lib/warren2'));
  });
});

describe('@warren/runtime public surface', () => {
  it('exports exactly these values', () => {
    expect(Object.keys(runtime).sort()).toEqual([
      'AGENTS_BIN_IN_SANDBOX',
      'AGENT_CLIS_IN_SANDBOX',
      'AGENT_PATH',
      'AgentGateway',
      'RUNNER_IN_SANDBOX',
      'RuntimeError',
      'agentSandboxSpec',
      'createBubblewrapRuntime',
      'describeExit',
      'describeOutOfMemory',
      'describeProcessLimit',
      'homeInSandbox',
      'instanceTag',
      'removeExecLeftovers',
    ]);
  });
});
