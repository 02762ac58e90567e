import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@warren/core';
import { loadPolicy } from '@warren/policy';
import { agentNatsGrants, policyAgents, policyTopics, writeAgentNatsFile } from '../src/messaging/nats-users.js';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-nats-users-'));
  dirs.push(dir);
  return dir;
}

/** The shipped policy plus `extra` lines, with shell-1 and shell-2 members of template:shell as the supervisor makes them. */
async function policyWith(extra: string) {
  const dir = tempDir();
  writeFileSync(join(dir, 'model.conf'), readFileSync(join(repoPolicies, 'model.conf'), 'utf8'));
  const text = `${readFileSync(join(repoPolicies, 'policy.csv'), 'utf8')}\n${extra}\n`;
  writeFileSync(join(dir, 'policy.csv'), text);
  const policy = await loadPolicy({ modelPath: join(dir, 'model.conf'), policyPath: join(dir, 'policy.csv'), logger: silentLogger });
  for (const agent of ['shell-1', 'shell-2', 'reporter-1']) policy.addRoleForSubject(agent, `template:${agent.replace(/-\d+$/, '')}`);
  return { policy, text };
}

const CONFIG = { servers: ['nats://127.0.0.1:4222'], nkeySeed: `SU${'A'.repeat(56)}`, inboxPrefix: '_INBOX.warren.agent.shell-1', subjectPrefix: 'warren' };

describe('per-agent NATS grants from the policy', () => {
  it('names the topics and agents the policy names, wildcards aside', () => {
    const text = '# topic:hidden\np, role:worker, topic:news, publish, allow\np, shell-1, topic:*, subscribe, allow\np, role:worker, agent:shell-9, message, deny\ng, x, topic:Bad\n';
    expect(policyTopics(text)).toEqual(['news']);
    expect(policyAgents(text)).toEqual(['shell-9']);
  });

  it("gives '*' where a wildcard allows every name, and an explicit list where a deny takes one", async () => {
    const { policy, text } = await policyWith('p, shell-1, agent:shell-2, message, deny\np, shell-1, topic:news, subscribe, deny\np, role:worker, topic:news, publish, allow');
    const agents = ['reporter-1', 'shell-1', 'shell-2', ...policyAgents(text)];
    expect(agentNatsGrants(policy, 'shell-2', agents, policyTopics(text))).toEqual({ messageTo: '*', publishTopics: '*', subscribeTopics: '*' });
    expect(agentNatsGrants(policy, 'shell-1', agents, policyTopics(text))).toEqual({ messageTo: ['reporter-1'], publishTopics: '*', subscribeTopics: [] });
  });

  it('gives nothing to a principal the policy grants nothing', async () => {
    const { policy } = await policyWith('');
    expect(agentNatsGrants(policy, 'stranger-1', ['shell-1'], ['news'])).toEqual({ messageTo: [], publishTopics: [], subscribeTopics: [] });
  });
});

describe("the agent's nats.json", () => {
  it('is written 0400 as the agent, in a .warren it owns, replacing the last one', () => {
    const home = tempDir();
    writeAgentNatsFile(home, 4321, 4322, CONFIG);
    writeAgentNatsFile(home, 4321, 4322, { ...CONFIG, servers: ['nats://127.0.0.1:5222'] });
    const file = join(home, '.warren', 'nats.json');
    const info = statSync(file);
    expect(info.mode & 0o777).toBe(0o400);
    expect([info.uid, info.gid]).toEqual([4321, 4322]);
    expect(statSync(join(home, '.warren')).uid).toBe(4321);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ ...CONFIG, servers: ['nats://127.0.0.1:5222'] });
  });

  it('refuses a .warren the agent made a symlink, and writes nothing where it points', () => {
    const home = tempDir();
    const elsewhere = tempDir();
    symlinkSync(elsewhere, join(home, '.warren'));
    expect(() => writeAgentNatsFile(home, 4321, 4322, CONFIG)).toThrow(/\.warren is not a real directory: refused/);
    expect(() => lstatSync(join(elsewhere, 'nats.json'))).toThrow();
  });

  it("refuses a .warren owned by another agent", () => {
    const home = tempDir();
    mkdirSync(join(home, '.warren'));
    chownSync(join(home, '.warren'), 5555, 5555);
    expect(() => writeAgentNatsFile(home, 4321, 4322, CONFIG)).toThrow(/owned by uid 5555/);
  });
});
