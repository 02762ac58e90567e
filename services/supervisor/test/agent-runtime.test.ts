import type { Account } from '@warren/accounts';
import { describe, expect, it } from 'vitest';
import { agentSpecOf, agentStartSpecOf, runnerRuntimeOf } from '../src/agent-runtime.js';
import { parseTemplate } from '../src/templates.js';

// The runtime-neutral specs the supervisor hands the agent runtime, from an account and its template.

const account: Account = { name: 'shell-2', template: 'shell', uid: 1_900_000_002, gid: 1_900_000_002, home: '/srv/warren/home/shell/shell-2', shell: '/bin/sh' } as Account;

function template(extra: string) {
  return parseTemplate(`name: shell\ncapabilities: [shell, node]\nruntime: { kind: shell }\n${extra}`, 'agents/shell.yaml');
}

describe('agent specs for the runtime', () => {
  it('carry the account, the template limits, allow-list and mounts, and full isolation by default', () => {
    const t = template('environment: [GIT_AUTHOR]\nmounts: [{ source: docs, target: /repo/docs }]');
    expect(agentSpecOf(account, t)).toEqual({
      name: 'shell-2',
      template: 'shell',
      uid: 1_900_000_002,
      gid: 1_900_000_002,
      homeDir: '/srv/warren/home/shell/shell-2',
      shell: '/bin/sh',
      resources: t.resources,
      isolation: 'full',
      environment: ['GIT_AUTHOR'],
      mounts: t.mounts,
    });
  });

  it('map the template isolation unsafe-no-cgroups to unsafe', () => {
    expect(agentSpecOf(account, template('isolation: unsafe-no-cgroups')).isolation).toBe('unsafe');
  });

  it.each([
    [20_000, 5_000],
    [1_000, 250],
    [200, 100],
    [3, 100],
  ])('with a heartbeat timeout of %i ms, tell the runner to beat every %i ms, and twice that while idle', (heartbeatTimeoutMs, heartbeatIntervalMs) => {
    const spec = agentStartSpecOf(account, template(''), { heartbeatTimeoutMs, stateDir: '/srv/warren/var' });
    expect(spec.runner.heartbeatIntervalMs).toBe(heartbeatIntervalMs);
    expect(spec.runner.idleHeartbeatIntervalMs).toBe(2 * heartbeatIntervalMs);
  });

  it('carry capabilities, the runner settings, the home quota and the log path', () => {
    const t = template('resources: { home: 64MiB }\nwipPerInstance: 3');
    expect(agentStartSpecOf(account, t, { heartbeatTimeoutMs: 20_000, stateDir: '/srv/warren/var' })).toMatchObject({
      capabilities: ['shell', 'node'],
      runner: { runtime: t.runtime, maxConcurrent: t.wipPerInstance },
      homeQuotaBytes: 64 * 2 ** 20,
      logPath: '/srv/warren/var/logs/shell-2.log',
    });
  });
});

describe('agent runtimes for the runner', () => {
  const coder = (extra = '') =>
    parseTemplate(`name: coder\ncapabilities: [code]\nruntime: { kind: codex, provider: openai, model: gpt-5.2, mcp: true }\nresources: { memory: 1GiB }\n${extra}`, 'agents/coder.yaml');
  const coderAccount = (name: string): Account => ({ ...account, name, template: 'coder' });

  it("tell the runner the CLI's binary inside the sandbox, its provider and model, and offer MCP only when the API is served", () => {
    const t = coder();
    expect(runnerRuntimeOf(t, 'coder-1', '/nowhere', true)).toEqual({ kind: 'codex', binary: '/opt/warren/clis/not-installed/codex', provider: 'openai', model: 'gpt-5.2', mcp: true });
    expect(runnerRuntimeOf(t, 'coder-1', '/nowhere', false)).not.toHaveProperty('mcp');
    const loop = parseTemplate('name: thinker\ncapabilities: [think]\nruntime: { kind: llm, provider: local, model: qwen, maxTurns: 5 }\n', 'agents/thinker.yaml');
    expect(runnerRuntimeOf(loop, 'thinker-1', '/nowhere', true)).toEqual({ kind: 'llm', program: ['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs'], provider: 'local', model: 'qwen', maxTurns: 5, mcp: true });
  });

  it("give one agent its own model and resources, the others the template's", () => {
    const t = coder('agents:\n  coder-2: { model: gpt-5.2-pro, resources: { memory: 4GiB, pids: 1024 } }\n');
    expect(runnerRuntimeOf(t, 'coder-2', '/nowhere')).toMatchObject({ model: 'gpt-5.2-pro' });
    expect(runnerRuntimeOf(t, 'coder-1', '/nowhere')).toMatchObject({ model: 'gpt-5.2' });
    expect(agentSpecOf(coderAccount('coder-2'), t).resources).toEqual({ ...t.resources, memoryMaxBytes: 4 * 1024 ** 3, pidsMax: 1024 });
    expect(agentSpecOf(coderAccount('coder-1'), t).resources).toEqual(t.resources);
  });
});
