import { randomInt } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, waitFor } from '../support/cli.js';
import {
  agentProcesses,
  agentUids,
  checkInvariants,
  countStatus,
  diagnose,
  finish,
  makeLayout,
  RestartableNats,
  seededRandom,
  shellTask,
  startRun,
  type RunEnd,
} from './support.js';

/** Tasks in the run (env `WARREN_CHAOS_TASKS`, default 1000). */
const TASKS = Number(process.env.WARREN_CHAOS_TASKS ?? 1000);
/** How long kills go on, in ms (env `WARREN_CHAOS_MS`, default 60000); then the run may finish. */
const CHAOS_MS = Number(process.env.WARREN_CHAOS_MS ?? 60_000);
/** Most kills in one chaos run. */
const MAX_KILLS = 20;
/** Most supervisor starts in one chaos run. */
const MAX_ROUNDS = 40;
/** The seed of the kill schedule (env `WARREN_CHAOS_SEED` replays one; timing still varies). */
const SEED = Number(process.env.WARREN_CHAOS_SEED ?? randomInt(2 ** 31));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('chaos', () => {
  it(`${TASKS} no-op tasks with random SIGKILLs of the supervisor, agents and the broker end with the invariants`, async () => {
    expect(Number.isInteger(TASKS) && TASKS > 0, `WARREN_CHAOS_TASKS must be a positive whole number, got ${process.env.WARREN_CHAOS_TASKS}`).toBe(true);
    const random = seededRandom(SEED);
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const width = String(TASKS).length;
    const tasks = Object.fromEntries(
      Array.from({ length: TASKS }, (_, i) => {
        const id = `c${String(i + 1).padStart(width, '0')}`;
        return [id, shellTask(id, 'true')];
      }),
    );
    const layout = makeLayout({ tasks, natsUrl: nats.url, maxInstances: 2, wipPerInstance: 8 });
    cleanups.push(() => layout.remove());

    const kills = { supervisor: 0, agent: 0, broker: 0 };
    const chaosUntil = Date.now() + CHAOS_MS;
    const log: string[] = [`seed ${SEED}`];
    let quiet = false;
    let rounds = 0;
    while (!quiet && rounds < MAX_ROUNDS) {
      rounds += 1;
      const run = startRun(layout, {}, ['--log-level', 'warn']);
      cleanups.push(() => {
        if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
      });
      let ended: RunEnd | undefined;
      void run.done.then((r) => (ended = r));
      let killedSupervisor = false;
      while (!ended && Date.now() < chaosUntil && kills.supervisor + kills.agent + kills.broker < MAX_KILLS) {
        await Promise.race([sleep(200 + random() * 1300), run.done]);
        if (ended || Date.now() >= chaosUntil) break;
        const pick = random();
        if (pick < 0.3) {
          kills.supervisor += 1;
          log.push(`round ${rounds}: SIGKILL supervisor pid ${run.child.pid} (done ${countStatus(layout, 'done')})`);
          process.kill(run.child.pid!, 'SIGKILL');
          killedSupervisor = true;
          break;
        } else if (pick < 0.7) {
          const uids = await agentUids(layout);
          const pids = agentProcesses(layout, uids);
          if (pids.length === 0) continue;
          const victim = pids[Math.floor(random() * pids.length)]!;
          kills.agent += 1;
          log.push(`round ${rounds}: SIGKILL agent process ${victim} (done ${countStatus(layout, 'done')})`);
          try {
            process.kill(victim, 'SIGKILL');
          } catch {
            // it ended meanwhile
          }
        } else {
          kills.broker += 1;
          log.push(`round ${rounds}: SIGKILL nats-server pid ${nats.pid} (done ${countStatus(layout, 'done')})`);
          await nats.kill();
          await sleep(random() * 1500);
          await nats.restart();
        }
      }
      let end: RunEnd;
      try {
        end = await finish(run, killedSupervisor ? 30_000 : 240_000);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${log.join('\n')}\n${await diagnose(layout, run)}`);
      }
      if (killedSupervisor) {
        expect(end.signal).toBe('SIGKILL');
        const uids = await agentUids(layout);
        await waitFor('the killed supervisor\'s agents to end', () => agentProcesses(layout, uids).length === 0, 20_000);
        continue;
      }
      log.push(`round ${rounds}: the supervisor ended by itself, code ${end.code}`);
      expect(end.signal, `${log.join('\n')}\n${end.stderr.slice(-3000)}`).toBeNull();
      quiet = countStatus(layout, 'done') + countStatus(layout, 'failed') === TASKS;
    }
    expect(quiet, `the board was not quiet after ${rounds} supervisor starts\n${log.join('\n')}`).toBe(true);
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    const report = await checkInvariants(layout);
    const summary = `seed ${SEED}: ${rounds} starts; kills: supervisor ${kills.supervisor}, agent ${kills.agent}, broker ${kills.broker}; succeeded ${report.succeeded.size}, failed ${report.failed.size}`;
    console.log(summary);
    expect(report.violations, `${summary}\n${log.join('\n')}`).toEqual([]);
    expect(kills.supervisor + kills.agent + kills.broker).toBeGreaterThan(0);
  }, 600_000);
});
