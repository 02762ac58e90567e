import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, waitFor } from '../support/cli.js';
import {
  agentProcesses,
  agentUids,
  checkInvariants,
  countStatus,
  diagnose,
  makeLayout,
  RestartableNats,
  seededRandom,
  shellTask,
  startRun,
  type RunEnd,
} from './support.js';
import { describeSupervisorView, finishInspecting, loggedInspection, supervisorView } from './view.js';

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
/**
 * The agents' lifecycle (env `WARREN_CHAOS_LIFECYCLE`, default `persistent`: two agents of eight
 * tasks each; `autodelete`: four per-task agents, a fresh one for each task).
 */
const LIFECYCLE = process.env.WARREN_CHAOS_LIFECYCLE === 'autodelete' ? 'autodelete' : 'persistent';
/** Where to write the run's outcome as JSON (env `WARREN_CHAOS_REPORT`; `npm run chaos` reads it). */
const REPORT = process.env.WARREN_CHAOS_REPORT;

/** What one chaos run did, as `npm run chaos` prints it. */
interface ChaosReport {
  seed: number;
  tasks: number;
  /** `pass`; `stall`: a supervisor did not end or the board did not get quiet; `invariants`: it ended but an invariant broke; `error`: anything else. */
  outcome: 'pass' | 'stall' | 'invariants' | 'error';
  rounds: number;
  kills: { supervisor: number; agent: number; broker: number };
  /** Board columns and Warren's sets at the end. */
  counts: { succeeded: number; failed: number; cancelled: number; ready: number; inProgress: number; auditRows: number } | undefined;
  /** The failed tasks' results with digits folded to `N`, and how many tasks ended with each. */
  failedReasons?: Record<string, number>;
  violations: string[];
  durationMs: number;
  /** The failure message (with the supervisor's view on a stall). */
  message?: string;
}

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
    const layout = makeLayout({ tasks, natsUrl: nats.url, lifecycle: LIFECYCLE, ...(LIFECYCLE === 'autodelete' ? { maxInstances: 4, wipPerInstance: 1 } : { maxInstances: 2, wipPerInstance: 8 }) });
    cleanups.push(() => layout.remove());

    const kills = { supervisor: 0, agent: 0, broker: 0 };
    const startedMs = Date.now();
    const chaosUntil = Date.now() + CHAOS_MS;
    const log: string[] = [`seed ${SEED}`];
    let quiet = false;
    let rounds = 0;
    const report: ChaosReport = { seed: SEED, tasks: TASKS, outcome: 'error', rounds: 0, kills, counts: undefined, violations: [], durationMs: 0 };
    const writeReport = (): void => {
      report.rounds = rounds;
      report.durationMs = Date.now() - startedMs;
      if (REPORT) writeFileSync(REPORT, `${JSON.stringify(report, null, 2)}\n`);
    };
    const stalled = async (message: string): Promise<never> => {
      report.outcome = 'stall';
      report.message = `${message}\n${describeSupervisorView(layout)}`;
      const view = supervisorView(layout);
      report.counts = {
        succeeded: view?.taskStates.succeeded ?? 0,
        failed: view?.taskStates.failed ?? 0,
        cancelled: view?.taskStates.cancelled ?? 0,
        ready: countStatus(layout, 'ready'),
        inProgress: countStatus(layout, 'in_progress'),
        auditRows: -1,
      };
      writeReport();
      throw new Error(report.message);
    };
    try {
      while (!quiet && rounds < MAX_ROUNDS) {
        rounds += 1;
        const run = startRun(layout, {}, ['--log-level', 'warn']);
        cleanups.push(() => {
          if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
        });
        let ended: Awaited<typeof run.done> | undefined;
        // A failed start rejects run.done, which the loop below awaits and reports.
        run.done.then((r) => (ended = r), () => undefined);
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
        let end!: RunEnd;
        try {
          end = await finishInspecting(run, killedSupervisor ? 30_000 : 240_000);
        } catch (error) {
          await stalled(`${(error as Error).message}\n${log.join('\n')}\n${await diagnose(layout, run)}\n${loggedInspection(run)}`);
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
      if (!quiet) await stalled(`the board was not quiet after ${rounds} supervisor starts\n${log.join('\n')}`);
      expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
      const invariants = await checkInvariants(layout);
      report.violations = invariants.violations;
      report.counts = {
        succeeded: invariants.succeeded.size,
        failed: invariants.failed.size,
        cancelled: invariants.cancelled.size,
        ready: countStatus(layout, 'ready'),
        inProgress: countStatus(layout, 'in_progress'),
        auditRows: invariants.audit.length,
      };
      report.failedReasons = {};
      for (const task of invariants.tasks) {
        if (!invariants.failed.has(task.id)) continue;
        const reason = (task.result ?? '').replace(/\d+/g, 'N').slice(0, 120);
        report.failedReasons[reason] = (report.failedReasons[reason] ?? 0) + 1;
      }
      report.outcome = invariants.violations.length === 0 ? 'pass' : 'invariants';
      if (invariants.violations.length > 0) report.message = `${invariants.violations.slice(0, 40).join('\n')}\n${log.join('\n')}`;
      writeReport();
      const summary = `seed ${SEED}: ${rounds} starts; kills: supervisor ${kills.supervisor}, agent ${kills.agent}, broker ${kills.broker}; succeeded ${invariants.succeeded.size}, failed ${invariants.failed.size}`;
      console.log(summary);
      expect(invariants.violations, `${summary}\n${log.join('\n')}`).toEqual([]);
      expect(kills.supervisor + kills.agent + kills.broker).toBeGreaterThan(0);
    } catch (error) {
      if (report.outcome === 'error') {
        report.message = `${(error as Error).message}\n${log.join('\n')}`;
        writeReport();
      }
      throw error;
    }
  }, 600_000);
});
