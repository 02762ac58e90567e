import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardConfig } from '@warren/kanban';
import { migrateState, StateStore, TaskState, type TaskRow } from '@warren/registry';
import { isCandidate, ReadyCandidates, type CandidateBoard, type CandidateTask } from '../src/ready-set.js';

const config = { roles: { ready: 'ready', in_progress: 'doing', done: 'done' } } as unknown as BoardConfig;
const STATUSES = ['ready', 'doing', 'done', 'backlog'] as const;
const ROW_STATES = [TaskState.ready, TaskState.assigned, TaskState.running, TaskState.succeeded, TaskState.held] as const;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function store(): { state: StateStore } {
  const db = new Database(':memory:');
  cleanups.push(() => db.close());
  migrateState(db);
  return { state: new StateStore(db) };
}

const row = (id: string, state: TaskRow['state'], boardSync: TaskRow['boardSync']): TaskRow => ({
  id, path: `tasks/${id}.md`, state, attempt: 0, agent: null, reason: null, boardHash: null, boardSync, updatedMs: 0,
  notBeforeMs: null, readySinceMs: 0, queuePosition: null, queueReason: null,
});

/** What a scan of every task says. */
function scan(board: CandidateBoard<CandidateTask>, state: StateStore): { indices: number[]; inProgress: number } {
  const byId = new Map(board.tasks.map((t) => [t.id, t]));
  const indices = board.tasks.flatMap((t, i) => (isCandidate(t, byId, config, state.task(t.id)) ? [i] : []));
  return { indices, inProgress: board.tasks.filter((t) => t.status === 'doing').length };
}

type Op =
  | { kind: 'row'; task: number; state: TaskRow['state']; pending: boolean }
  | { kind: 'replace'; task: number; status: string; dependsOn: number[] }
  | { kind: 'snapshot' }
  | { kind: 'update' };

const op = (n: number, withDependencies: boolean): fc.Arbitrary<Op> =>
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('row' as const), task: fc.integer({ min: 0, max: n + 1 }), state: fc.constantFrom(...ROW_STATES), pending: fc.boolean() }), weight: 4 },
    { arbitrary: fc.record({
      kind: fc.constant('replace' as const),
      task: fc.integer({ min: 0, max: n - 1 }),
      status: fc.constantFrom('ready', 'done', ...STATUSES),
      dependsOn: withDependencies ? fc.array(fc.integer({ min: 0, max: n - 1 }), { maxLength: 2 }) : fc.constant([]),
    }), weight: 4 },
    { arbitrary: fc.constant({ kind: 'snapshot' as const }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'update' as const }), weight: 3 },
  );

describe('ReadyCandidates', () => {
  it('equal a scan of every task after any row writes, card replacements and new snapshots', () => {
    fc.assert(
      fc.property(
        fc.boolean().chain((deps) =>
          fc.integer({ min: 1, max: 6 }).chain((n) =>
            fc.record({
              initial: fc.array(fc.constantFrom(...STATUSES), { minLength: n, maxLength: n }),
              ops: fc.array(op(n, deps), { maxLength: 40 }),
            }),
          ),
        ),
        ({ initial, ops }) => {
          const { state } = store();
          const tasks: CandidateTask[] = initial.map((status, i) => ({ id: `t${i}`, status, dependsOn: [] }));
          let board: CandidateBoard<CandidateTask> = { config, tasks };
          let version = 0;
          // Each version of a card is a new object: what is derived must be of the current one.
          const versions = new WeakMap<CandidateTask, number>();
          let made = 0;
          const derive = (t: CandidateTask) => {
            if (!versions.has(t)) versions.set(t, (made += 1));
            return versions.get(t)!;
          };
          const candidates = new ReadyCandidates<CandidateTask, number>(derive);
          const check = () => {
            candidates.update(board, version, new Map(board.tasks.map((t) => [t.id, t])), state);
            expect({ indices: [...candidates.indices], inProgress: candidates.inProgress }).toEqual(scan(board, state));
            for (const i of candidates.indices) expect(candidates.derived(i)).toBe(derive(board.tasks[i]!));
          };
          check();
          for (const o of ops) {
            if (o.kind === 'row') state.putTask(row(`t${o.task}`, o.state, o.pending ? 'pending' : 'clean'));
            else if (o.kind === 'replace') {
              (board.tasks as CandidateTask[])[o.task] = { id: `t${o.task}`, status: o.status, dependsOn: o.dependsOn.map((d) => `t${d}`) };
              version += 1;
            } else if (o.kind === 'snapshot') {
              board = { config, tasks: [...board.tasks] };
              version += 1;
            } else check();
          }
          check();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sees a task become ready when a card it has depended on since its last change is done', () => {
    const { state } = store();
    const tasks: CandidateTask[] = [{ id: 't0', status: 'ready', dependsOn: [] }, { id: 't1', status: 'ready', dependsOn: [] }];
    const board = { config, tasks };
    const candidates = new ReadyCandidates<CandidateTask>();
    const byId = () => new Map(tasks.map((t) => [t.id, t]));
    candidates.update(board, 0, byId(), state);
    tasks[0] = { id: 't0', status: 'ready', dependsOn: ['t1'] };
    candidates.update(board, 1, byId(), state);
    expect([...candidates.indices]).toEqual([1]);
    tasks[1] = { id: 't1', status: 'done', dependsOn: [] };
    candidates.update(board, 2, byId(), state);
    expect([...candidates.indices]).toEqual([0]);
  });

  it('follows row writes and replaced cards without scanning again, and scans when the change log no longer reaches back', () => {
    const { state } = store();
    const tasks: CandidateTask[] = Array.from({ length: 50 }, (_, i) => ({ id: `t${i}`, status: 'ready', dependsOn: [] }));
    const board = { config, tasks };
    const candidates = new ReadyCandidates<CandidateTask>();
    const byId = () => new Map(tasks.map((t) => [t.id, t]));
    candidates.update(board, 0, byId(), state);
    expect(candidates.indices.length).toBe(50);
    state.putTask(row('t3', TaskState.assigned, 'pending'));
    tasks[7] = { id: 't7', status: 'doing', dependsOn: [] };
    candidates.update(board, 1, byId(), state);
    expect([candidates.indices.length, candidates.indices.includes(3), candidates.indices.includes(7), candidates.inProgress]).toEqual([48, false, false, 1]);
    expect(candidates.scans).toBe(1);

    for (let i = 0; i < 10_000; i += 1) state.putTask(row(`t${i % 50}`, i % 2 === 0 ? TaskState.ready : TaskState.running, 'clean'));
    candidates.update(board, 1, byId(), state);
    expect(candidates.scans).toBe(2);
    expect([...candidates.indices]).toEqual(scan(board, state).indices);
  });
});
