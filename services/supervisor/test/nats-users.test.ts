import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@warren/core';
import { loadPolicy } from '@warren/policy';
import { agentNatsGrants, agentNatsGrantsByClass, policyAgents, policyTopics, SYNC_GATHER_MAX_MS, SYNC_GATHER_MIN_USERS, SYNC_SLOW_MS, syncGatherMs, writeAgentNatsFile } from '../src/messaging/nats-users.js';

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

/** Every agent's grants the old way (`explain` per agent and name) and by decision class, with the candidates and topics `sync` gives. */
function bothWays(policy: Awaited<ReturnType<typeof loadPolicy>>, text: string, accounts: readonly string[]) {
  const candidates = [...new Set([...accounts, ...policyAgents(text)])].sort();
  const topics = policyTopics(text);
  const old = new Map(accounts.map((agent) => [agent, agentNatsGrants(policy, agent, candidates, topics)]));
  return { old, byClass: agentNatsGrantsByClass(policy, accounts, candidates, topics) };
}

describe('per-agent NATS grants by decision class', () => {
  const variants = [
    '',
    'p, shell-1, agent:shell-2, message, deny\np, shell-1, topic:news, subscribe, deny\np, role:worker, topic:news, publish, allow',
    'p, template:shell, agent:shell-2, message, deny\np, template:reporter, topic:ci-*, publish, deny\np, role:worker, topic:ci-builds, subscribe, allow',
    'p, template:shell, agent:shell-1, message, deny\np, reporter-1, agent:*, message, deny\ng, shell-2, role:operator',
  ];
  for (const [i, extra] of variants.entries()) {
    it(`equal the old way's for the shipped policy, variant ${i}`, async () => {
      const { policy, text } = await policyWith(extra);
      const { old, byClass } = bothWays(policy, text, ['reporter-1', 'shell-1', 'shell-2', 'stranger-1']);
      expect(byClass).toEqual(old);
    });
  }

  it("equal the old way's for a generated policy of 300 agents, and ask one agent per class", async () => {
    const templates = ['shell', 'reporter', 'builder', 'watcher'];
    const agents = Array.from({ length: 300 }, (_, i) => `${templates[i % templates.length]}-${i}`);
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const lines = ['g, template:builder, role:worker', 'p, template:watcher, topic:ci-*, subscribe, allow', 'p, template:watcher, agent:builder-*, message, allow'];
    for (let i = 0; i < 40; i++) {
      const who = next(3) === 0 ? agents[next(agents.length)]! : `template:${templates[next(templates.length)]}`;
      const target = next(4) === 0 ? `agent:${agents[next(agents.length)]}` : next(2) === 0 ? `topic:t${next(5)}` : `topic:ci-${next(3)}`;
      const act = target.startsWith('agent:') ? 'message' : next(2) === 0 ? 'publish' : 'subscribe';
      lines.push(`p, ${who}, ${target}, ${act}, ${next(3) === 0 ? 'deny' : 'allow'}`);
    }
    for (let i = 0; i < 10; i++) lines.push(`g, ${agents[next(agents.length)]}, role:ops`);
    lines.push('p, role:ops, agent:*, message, allow', 'p, role:ops, agent:watcher-3, message, deny', 'p, agent-gone, agent:shell-0, message, allow', 'p, template:reporter, agent:ghost-9, message, deny');
    const dir = tempDir();
    const text = `${readFileSync(join(repoPolicies, 'policy.csv'), 'utf8')}\n${lines.join('\n')}\n`;
    writeFileSync(join(dir, 'model.conf'), readFileSync(join(repoPolicies, 'model.conf'), 'utf8'));
    writeFileSync(join(dir, 'policy.csv'), text);
    const policy = await loadPolicy({ modelPath: join(dir, 'model.conf'), policyPath: join(dir, 'policy.csv'), logger: silentLogger });
    for (const agent of agents) policy.addRoleForSubject(agent, `template:${agent.replace(/-\d+$/, '')}`);
    let asked = 0;
    const counting = { enforce: (s: string, o: string, a: string) => ((asked += 1), policy.enforce(s, o, a)), decisionClass: (s: string) => policy.decisionClass(s) };
    const candidates = [...new Set([...agents, ...policyAgents(text)])].sort();
    const byClass = agentNatsGrantsByClass(counting, agents, candidates, policyTopics(text));
    const old = new Map(agents.map((agent) => [agent, agentNatsGrants(policy, agent, candidates, policyTopics(text))]));
    expect(byClass).toEqual(old);
    const classes = new Set(agents.map((a) => policy.decisionClass(a))).size;
    expect(classes).toBeLessThan(agents.length / 4);
    expect(asked).toBeLessThanOrEqual(classes * (candidates.length + 2 * policyTopics(text).length + 3));
    expect([...byClass.values()].some((g) => g.messageTo === '*')).toBe(true);
    expect([...byClass.values()].some((g) => Array.isArray(g.messageTo) && g.messageTo.length > 0)).toBe(true);
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

describe('the wait between two syncs of the per-agent users', () => {
  it('is none after a quick sync or one of few users, twice a slow one of many, and bounded', () => {
    const many = SYNC_GATHER_MIN_USERS;
    expect(syncGatherMs(0, many)).toBe(0);
    expect(syncGatherMs(SYNC_SLOW_MS - 1, many)).toBe(0);
    expect(syncGatherMs(SYNC_SLOW_MS, many)).toBe(2 * SYNC_SLOW_MS);
    expect(syncGatherMs(100, many)).toBe(200);
    expect(syncGatherMs(100, many - 1)).toBe(0);
    expect(syncGatherMs(10_000, 5_000)).toBe(SYNC_GATHER_MAX_MS);
  });
});
