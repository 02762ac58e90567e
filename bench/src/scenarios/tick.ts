import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { silentLogger } from '@warren/core';
import { resolveConfig, Supervisor } from '@warren/supervisor';
import type { BenchContext, Scenario } from '../lib/context.js';
import { latencyFigure, type Figure } from '../lib/figure.js';
import { makeLayout } from '../lib/layout.js';

/** Cards on the board: the size. */
const FULL_TASKS = 20_000;
const QUICK_TASKS = 2_000;

/** The supervisor's tick, reached past its private modifier (the bench drives ticks itself). */
interface Ticking {
  tick(nowMs: number): Promise<void>;
}

/**
 * Writes `count` cards straight into the board folder: half `done` (history), half `ready` but
 * asking for a capability no template offers, so they wait for ever (the ready set is as large as
 * it gets while nothing can be planned). Files are written directly: no watcher runs yet.
 */
function writeCards(boardDir: string, count: number): void {
  const tasksDir = join(boardDir, 'tasks');
  mkdirSync(tasksDir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const id = `c-${String(i).padStart(5, '0')}`;
    const done = i % 2 === 0;
    const text = done
      ? `---\nid: ${id}\ntitle: Card ${id}\nstatus: done\ncapabilities: [shell]\ncommand: "true"\ncreated: 2026-11-20T09:00:00Z\n---\nDone long ago.\n`
      : `---\nid: ${id}\ntitle: Card ${id}\nstatus: ready\ncapabilities: [gpu]\ncommand: "true"\ncreated: 2026-11-20T09:00:00Z\n---\nWaits for a gpu agent.\n`;
    writeFileSync(join(tasksDir, `${id}.md`), text);
  }
}

/** Waits until `ready()` holds, polling every 20 ms; throws after `timeoutMs`. */
async function waitFor(what: string, ready: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await delay(20);
  }
}

/**
 * Ticks of an idle supervisor over a large board: `count` cards (half done, half ready that no
 * template can take), one long-running template with no agent running, nothing changing. The
 * supervisor runs in-process (`up` mode, the embedded nats-server, the real state database);
 * its own tick loop is slowed to an hour so that every tick measured is one the bench calls, one
 * at a time, each awaited. Samples: ms per tick.
 */
async function idleTicks(ctx: BenchContext, count: number, ticksPerRound: number): Promise<number[][]> {
  const layout = makeLayout(join(ctx.scratchDir, 'tick-idle'), ctx.repoRoot, { lifecycle: 'persistent', maxInstances: 4, tasks: 0 });
  writeCards(join(layout.root, 'kanban'), count);
  const agentRunnerDir = dirname(dirname(fileURLToPath(import.meta.resolve('@warren/agent-runner'))));
  const config = { ...resolveConfig({ root: layout.root, http: 'off' }, agentRunnerDir), tickIntervalMs: 3_600_000 };
  const supervisor = await Supervisor.create(config, { logger: silentLogger, mode: 'up' });
  const running = supervisor.run();
  const samples: number[][] = [];
  try {
    // The first ticks read the board and record the queue; then nothing changes.
    await waitFor('the first full plan', () => supervisor.inspect().lastPlan !== null && !supervisor.inspect().boardDirty, 120_000);
    const ticking = supervisor as unknown as Ticking;
    for (let i = 0; i < 20; i++) await ticking.tick(Date.now());
    for (let round = 0; round < ctx.rounds; round++) {
      const times: number[] = [];
      for (let i = 0; i < ticksPerRound; i++) {
        const start = performance.now();
        await ticking.tick(Date.now());
        times.push(performance.now() - start);
      }
      samples.push(times);
      await delay(50);
    }
  } finally {
    supervisor.shutdown('bench done');
    await running.catch(() => undefined);
    await supervisor.close();
  }
  return samples;
}

/**
 * Issue 18: a supervisor tick with 20,000 tasks on the board and nothing changed (target ≤ 1 ms).
 * Needs what `warren up` needs (root, bwrap, setpriv, nats-server).
 */
export const tickScenario: Scenario = {
  id: 'tick',
  title: 'Supervisor tick',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const count = ctx.quick ? QUICK_TASKS : FULL_TASKS;
    ctx.progress(`tick: idle supervisor, ${count} cards on the board`);
    const samples = await idleTicks(ctx, count, ctx.quick ? 50 : 200);
    return [
      latencyFigure(
        {
          id: count === FULL_TASKS ? 'supervisor.tick.idle-20k' : 'supervisor.tick.idle-2k',
          scenario: 'Supervisor tick',
          name: `supervisor tick, ${count.toLocaleString('en')} tasks on the board, nothing changed`,
          unit: 'ms',
          better: 'lower',
          ...(count === FULL_TASKS ? { targets: [{ stat: 'p50', op: '<=', value: 1 } as const] } : {}),
          note: 'half the cards done, half ready for a capability no template offers; one template, no agent; every stage of the tick, each awaited',
        },
        samples,
      ),
    ];
  },
};
