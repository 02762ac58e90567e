/**
 * Agents on `warren node` hosts: the built `warren up` (no agent on its own host,
 * `--no-local-node`) and two `warren node start` processes joined through its `node-join.json`, on
 * one machine, with a real nats-server (or a 3-server cluster with R3 streams). Placement by
 * labels; a node killed with SIGKILL mid-task is marked lost, its agent's task re-queued and done
 * once on the other node; the assignment stream's leader killed mid-run. Each time the durability
 * invariants of `test/durability` hold (board, audit chain, consumers drained).
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startNatsCluster, type NatsCluster } from '@warren/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { processesOfUids, requireMachine, startWarren, waitFor, warren, type CliProcess } from '../support/cli.js';
import { agentAccounts, agentUids, checkInvariants, countStatus, finish, makeLayout, namespaceOf, readAudit, RestartableNats, shellTask, type Layout } from '../durability/support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

/** `count` shell tasks `<prefix>1…` that each run `command`. */
function tasksOf(prefix: string, count: number, command: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${i + 1}`, shellTask(`${prefix}${i + 1}`, command)]));
}

/** Kills `run` with SIGKILL (by pid) when it still runs. */
function killIfRunning(run: CliProcess): void {
  if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
}

/** Starts `warren up` on `layout` (external NATS, no HTTP, no agent on this host) and waits for its node-join.json. */
async function startSupervisor(layout: Layout, nats: readonly string[] = []): Promise<{ run: CliProcess; joinFile: string }> {
  const run = startWarren(layout.args(['up', '--http', 'off', '--no-local-node', '--heartbeat-timeout', '60s', ...nats], nats.length === 0));
  cleanups.push(() => killIfRunning(run));
  const joinFile = join(layout.stateDir, 'node-join.json');
  await waitFor('the supervisor writes node-join.json', () => existsSync(joinFile) || run.child.exitCode !== null, 120_000);
  if (!existsSync(joinFile)) throw new Error(`warren up exited: ${run.stderr().slice(-4000)}`);
  return { run, joinFile };
}

/** Starts `warren node start --name <name>` with `labels`, its state under the layout. */
function startNode(layout: Layout, joinFile: string, name: string, labels: string): CliProcess {
  const stateDir = join(layout.dir, `node-${name}`);
  mkdirSync(stateDir, { recursive: true });
  const node = startWarren(['node', 'start', '--join', joinFile, '--name', name, '--labels', labels, '--max-agents', '4', '--memory', '4GiB', '--state-dir', stateDir, '--agents', join(layout.dir, 'agents'), '--kill-grace', '2s']);
  cleanups.push(() => killIfRunning(node));
  return node;
}

/** Where each agent was last placed (`agent_placements` of the supervisor's state database), by agent. */
function placements(layout: Layout): Map<string, string | null> {
  const db = new Database(join(layout.stateDir, 'warren.db'), { readonly: true, fileMustExist: true });
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'agent_placements'").get();
    if (!exists) return new Map();
    const rows = db.prepare('SELECT agent, node FROM agent_placements ORDER BY agent').all() as { agent: string; node: string | null }[];
    return new Map(rows.map((r) => [r.agent, r.node]));
  } finally {
    db.close();
  }
}

/** Stops `run` with SIGTERM (by pid) and waits for its end; fails with its stderr when it does not exit 0. */
async function stop(run: CliProcess, what: string): Promise<void> {
  if (run.child.pid !== undefined && run.child.exitCode === null) process.kill(run.child.pid, 'SIGTERM');
  const end = await finish(run, 120_000);
  expect(end.code, `${what}: ${end.stderr.slice(-4000)}`).toBe(0);
}

/** Kills (SIGKILL, by pid) every process still running as one of the layout's agents: what a SIGKILLed node left. */
async function killAgentProcesses(layout: Layout): Promise<void> {
  const uids = await agentUids(layout);
  for (const pid of processesOfUids(uids)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

describe('agents on warren node hosts', () => {
  it('a template with placement.labels runs only on the node that carries them', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const layout = makeLayout({ tasks: tasksOf('l', 4, 'echo placed'), natsUrl: nats.url, maxInstances: 2, wipPerInstance: 1 });
    cleanups.push(() => layout.remove());
    appendFileSync(join(layout.dir, 'agents', `${layout.template}.yaml`), 'placement:\n  labels: { zone: b }\n');
    const { run, joinFile } = await startSupervisor(layout);
    const nodeA = startNode(layout, joinFile, 'na', 'zone=a');
    const nodeB = startNode(layout, joinFile, 'nb', 'zone=b,disk=ssd');

    await waitFor('every task done', () => countStatus(layout, 'done') === 4 || run.child.exitCode !== null, 90_000).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\nsupervisor: ${tail(run)}\nnode na: ${tail(nodeA)}\nnode nb: ${tail(nodeB)}`);
    });
    expect(countStatus(layout, 'done'), run.stderr().slice(-4000)).toBe(4);
    const placed = placements(layout);
    expect(placed.size).toBeGreaterThan(0);
    for (const [agent, node] of placed) expect(node, `agent ${agent}`).toBe('nb');
    const ready = (await readAudit(layout, 'node.ready')).map((r) => r.object).sort();
    expect(ready).toEqual(['node:na', 'node:nb']);
    // `warren node list` hears both nodes; `warren exec` runs where the agent runs (node nb, over NATS).
    const listed = await warren(['node', 'list', '--json', '--state-dir', layout.stateDir]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { name: string; state: string }[]).map((n) => `${n.name}:${n.state}`)).toEqual(['na:ready', 'nb:ready']);
    const [agent] = [...placed.keys()];
    const exec = await warren(['exec', agent!, ...layout.args([]), '--', 'sh', '-c', 'id -u; echo here > "$HOME/exec-marker"']);
    expect(exec.code, exec.stderr).toBe(0);
    const uid = (await agentAccounts(layout)).get(agent!);
    expect(exec.stdout.split('\n')[0]).toBe(String(uid));
    // The home it wrote into is the agent's home on node nb.
    expect(existsSync(join(layout.dir, 'node-nb', 'homes', agent!, 'exec-marker'))).toBe(true);

    await stop(run, 'warren up');
    await stop(nodeA, 'node na');
    await stop(nodeB, 'node nb');
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(4);
  }, 600_000);

  it('a node killed with SIGKILL mid-task is marked lost; its task is re-queued and done once on the other node', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const layout = makeLayout({ tasks: tasksOf('k', 6, 'sleep 4'), natsUrl: nats.url, maxInstances: 2, wipPerInstance: 1 });
    cleanups.push(() => layout.remove());
    cleanups.push(() => killAgentProcesses(layout));
    const { run, joinFile } = await startSupervisor(layout);
    const first = startNode(layout, joinFile, 'n1', 'zone=a');
    // The first node is up before the second: the first agent goes there.
    await waitFor('node n1 heard of', () => placements(layout).size > 0 || countStatus(layout, 'in_progress') > 0, 120_000);
    const second = startNode(layout, joinFile, 'n2', 'zone=a');

    await waitFor('a task in progress on n1', () => [...placements(layout).values()].includes('n1') && countStatus(layout, 'in_progress') > 0, 120_000);
    const victim = [...placements(layout)].find(([, node]) => node === 'n1')![0];
    expect(countStatus(layout, 'done')).toBeLessThan(6);
    process.kill(first.child.pid!, 'SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');

    await waitFor('node n1 marked lost', () => countLost(layout) > 0, 120_000);
    await waitFor('every task done', () => countStatus(layout, 'done') === 6 || run.child.exitCode !== null, 300_000);
    expect(countStatus(layout, 'done'), run.stderr().slice(-4000)).toBe(6);
    const exits = (await readAudit(layout, 'agent.exit')).filter((r) => r.object === `agent:${victim}`);
    expect(exits.some((r) => (r.details?.exit as { kind?: string } | undefined)?.kind === 'lost')).toBe(true);
    expect(placements(layout).get(victim)).toBe('n2');

    await stop(run, 'warren up');
    await stop(second, 'node n2');
    await killAgentProcesses(layout);
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(6);
    // The lost attempt was run again: some task has an execution after the one lost with n1.
    expect(report.audit.some((r) => r.action === 'task.start' && (r.details?.attempt as number) > 1)).toBe(true);
  }, 600_000);
});

/** Waits until `stream` has a running leader other than `not`, and returns its index. */
async function leaderOf(cluster: NatsCluster, stream: string, not?: number): Promise<number> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const leader = await cluster.streamLeader(stream).catch(() => undefined);
    if (leader !== undefined && leader !== not) return leader;
    if (Date.now() > deadline) throw new Error(`stream ${stream} has no running leader${not === undefined ? '' : ` other than n${not}`} after 90 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The last lines a process wrote to stderr, for a failure's message. */
function tail(p: CliProcess): string {
  return p.stderr().split('\n').slice(-25).join('\n');
}

/** `node.lost` rows so far (read from the state database while the supervisor runs). */
function countLost(layout: Layout): number {
  const db = new Database(join(layout.stateDir, 'warren.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM audit WHERE action = 'node.lost'").get() as { n: number }).n;
  } catch {
    return 0;
  } finally {
    db.close();
  }
}

describe('nodes on a 3-server NATS cluster with R3 streams', () => {
  it('the leader of the assignment stream killed with SIGKILL mid-run and restarted: every task done exactly once on the two nodes', async () => {
    const cluster = await startNatsCluster({ size: 3 });
    cleanups.push(() => cluster.close());
    const layout = makeLayout({ tasks: tasksOf('c', 8, 'sleep 2'), natsUrl: cluster.urls[0]!, maxInstances: 2, wipPerInstance: 1 });
    cleanups.push(() => layout.remove());
    cleanups.push(() => killAgentProcesses(layout));
    const { run, joinFile } = await startSupervisor(layout, ['--nats-url', cluster.urls.join(','), '--nats-replicas', '3']);
    const n1 = startNode(layout, joinFile, 'n1', 'zone=a');
    const n2 = startNode(layout, joinFile, 'n2', 'zone=a');

    await waitFor('the first task in progress', () => countStatus(layout, 'in_progress') + countStatus(layout, 'done') > 0 || run.child.exitCode !== null, 120_000);
    expect(countStatus(layout, 'done')).toBeLessThan(8);
    const stream = namespaceOf(layout).assignStream;
    const leader = await leaderOf(cluster, stream);
    const exit = await cluster.kill(leader, 'SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    await leaderOf(cluster, stream, leader);
    await cluster.restart(leader);

    await waitFor('every task done', () => countStatus(layout, 'done') === 8 || run.child.exitCode !== null, 300_000).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\nsupervisor: ${tail(run)}\nnode n1: ${tail(n1)}\nnode n2: ${tail(n2)}`);
    });
    await stop(run, 'warren up');
    await stop(n1, 'node n1');
    await stop(n2, 'node n2');
    await cluster.waitForHealthy({ timeoutMs: 90_000 });
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(8);
  }, 600_000);
});
