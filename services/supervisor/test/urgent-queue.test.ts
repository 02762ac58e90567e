import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardConfig } from '@warren/kanban';
import { migrateState, StateStore, TaskState, type TaskRow } from '@warren/registry';
import { ReadyCandidates, type CandidateBoard, type CandidateTask } from '../src/ready-set.js';
import { plannerOrder, type PlannerTask } from '../src/urgent-plan.js';
import { UrgentQueue } from '../src/urgent-queue.js';

const config = { roles: { ready: 'ready', in_progress: 'doing', done: 'done' } } as unknown as BoardConfig;
const ROW_STATES = [TaskState.ready, TaskState.assigned, TaskState.running, TaskState.succeeded] as const;

/** A board task with what the planner orders it by. */
interface Card extends CandidateTask {
  readonly priorityRank: number;
  readonly createdMs: number;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function store(): StateStore {
  const db = new Database(':memory:');
  cleanups.push(() => db.close());
  migrateState(db);
  return new StateStore(db);
}

const row = (id: string, state: TaskRow['state']): TaskRow => ({
  id, path: `tasks/${id}.md`, state, attempt: 0, agent: null, reason: null, boardHash: null, boardSync: 'clean', updatedMs: 0,
  notBeforeMs: null, readySinceMs: 0, queuePosition: null, queueReason: null,
});

const plannerTask = (card: Card): PlannerTask => ({ id: card.id, priorityRank: card.priorityRank, createdMs: card.createdMs, capabilities: [] });

type Op =
  | { kind: 'row'; task: number; state: TaskRow['state'] }
  | { kind: 'replace'; task: number; ready: boolean; priorityRank: number; createdMs: number }
  | { kind: 'snapshot' }
  | { kind: 'tick'; k: number };

const op = (n: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('row' as const), task: fc.integer({ min: 0, max: n - 1 }), state: fc.constantFrom(...ROW_STATES) }), weight: 6 },
    {
      arbitrary: fc.record({
        kind: fc.constant('replace' as const),
        task: fc.integer({ min: 0, max: n - 1 }),
        ready: fc.boolean(),
        priorityRank: fc.integer({ min: 0, max: 3 }),
        createdMs: fc.integer({ min: 0, max: 4 }),
      }),
      weight: 3,
    },
    { arbitrary: fc.constant({ kind: 'snapshot' as const }), weight: 1 },
    { arbitrary: fc.record({ kind: fc.constant('tick' as const), k: fc.integer({ min: 1, max: 12 }) }), weight: 4 },
  );

describe('UrgentQueue', () => {
  it('following the changes ReadyCandidates reports, gives the first tasks of a scan of every ready task, in planner order', () => {
    let followed = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }).chain((n) =>
          fc.record({
            initial: fc.array(fc.record({ ready: fc.boolean(), priorityRank: fc.integer({ min: 0, max: 3 }), createdMs: fc.integer({ min: 0, max: 4 }) }), { minLength: n, maxLength: n }),
            keep: fc.integer({ min: 1, max: 8 }),
            ops: fc.array(op(n), { maxLength: 60 }),
          }),
        ),
        ({ initial, keep, ops }) => {
          const state = store();
          const card = (i: number, c: { ready: boolean; priorityRank: number; createdMs: number }): Card => ({
            id: `t${String(i).padStart(2, '0')}`, status: c.ready ? 'ready' : 'backlog', dependsOn: [], priorityRank: c.priorityRank, createdMs: c.createdMs,
          });
          let board: CandidateBoard<Card> = { config, tasks: initial.map((c, i) => card(i, c)) };
          for (const t of board.tasks) state.putTask(row(t.id, TaskState.ready));
          let version = 0;
          const candidates = new ReadyCandidates<Card>();
          const queue = new UrgentQueue();
          /** What a scan of every task finds ready (a ready row on a card in the ready column), in planner order. */
          const scan = () =>
            board.tasks
              .flatMap((t, index) => (t.status === 'ready' && state.task(t.id)?.state === TaskState.ready ? [{ t, index }] : []))
              .sort((a, b) => plannerOrder(plannerTask(a.t), plannerTask(b.t)));
          const reset = (k: number) => queue.reset(scan(), (r) => plannerTask(r.t), (r) => r.index, board.tasks.length, Math.max(keep, k));
          const tick = (k: number) => {
            candidates.update(board, version, new Map(board.tasks.map((t) => [t.id, t])), state);
            const touched = candidates.takeTouched();
            if (touched === undefined) reset(k);
            else {
              for (const index of touched) {
                queue.remove(index);
                if (candidates.isCandidateAt(index)) queue.add(index, plannerTask(board.tasks[index]!));
              }
            }
            const expected = scan().map((r) => r.t.id);
            expect(queue.count).toBe(expected.length);
            let first = queue.first(k);
            if (touched !== undefined && first !== undefined) followed += 1;
            if (first === undefined) {
              // The head was used up while tasks are left out: a scan sets it again.
              expect(expected.length).toBeGreaterThan(0);
              reset(k);
              first = queue.first(k);
            }
            expect(first?.map((t) => t.id)).toEqual(expected.slice(0, k));
          };
          tick(1);
          for (const o of ops) {
            if (o.kind === 'row') state.putTask(row(`t${String(o.task).padStart(2, '0')}`, o.state));
            else if (o.kind === 'replace') {
              (board.tasks as Card[])[o.task] = card(o.task, o);
              version += 1;
            } else if (o.kind === 'snapshot') {
              board = { config, tasks: [...board.tasks] };
              version += 1;
            } else tick(o.k);
          }
          tick(board.tasks.length + 1);
        },
      ),
      { numRuns: 300 },
    );
    // The queue must have answered from the changes alone (no scan) in many ticks, or this says little.
    expect(followed).toBeGreaterThan(150);
  });

  it('keeps a task in its head after another leaves it, and asks for a new scan once the head is used up', () => {
    const queue = new UrgentQueue();
    const tasks = Array.from({ length: 6 }, (_, i): PlannerTask => ({ id: `t${i}`, priorityRank: 0, createdMs: i, capabilities: [] }));
    queue.reset(tasks, (t) => t, (t) => Number(t.id.slice(1)), 6, 2);
    expect([queue.count, queue.first(2)?.map((t) => t.id)]).toEqual([6, ['t0', 't1']]);
    queue.remove(0);
    expect([queue.count, queue.first(1)?.map((t) => t.id), queue.first(2)]).toEqual([5, ['t1'], undefined]);
    // More urgent than the head's last: it joins the head. Less urgent: the rest.
    queue.add(0, { ...tasks[0]!, priorityRank: 1 });
    expect(queue.first(2)?.map((t) => t.id)).toEqual(['t0', 't1']);
    queue.remove(5);
    queue.add(5, tasks[5]!);
    expect([queue.count, queue.first(3)]).toEqual([6, undefined]);
  });
});
