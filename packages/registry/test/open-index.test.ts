import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignmentRow, AssignmentState, migrateState, StateStore, type AssignmentRecord, type AssignmentRow } from '@warren/registry';
import type { SqliteDatabase } from '@warren/store';
import { open, tempDir } from './support.js';

/** What the table says: the unfinished executions by assignment time, then insertion. */
function fromTable(db: SqliteDatabase): AssignmentRow[] {
  return db
    .prepare<[], AssignmentRecord>("SELECT * FROM assignments WHERE state != 'finished' ORDER BY assigned_ms, rowid")
    .all()
    .map(assignmentRow);
}

function store(): { db: SqliteDatabase; state: StateStore } {
  const db = open(join(tempDir(), 'warren.db'));
  migrateState(db);
  return { db, state: new StateStore(db) };
}

class Rollback extends Error {}

type Step =
  | { kind: 'add'; task: number; attempt: number; ms: number }
  | { kind: 'publish'; task: number; attempt: number }
  | { kind: 'state'; task: number; attempt: number; state: 'published' | 'acked'; ms: number }
  | { kind: 'finish'; task: number; attempt: number; ms: number }
  | { kind: 'read' }
  | { kind: 'tx'; commit: boolean; steps: Step[] };

const key = { task: fc.integer({ min: 0, max: 4 }), attempt: fc.integer({ min: 1, max: 2 }) };
const { steps } = fc.letrec<{ step: Step; steps: Step[] }>((tie) => ({
  step: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('add' as const), ...key, ms: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('publish' as const), ...key }),
    fc.record({ kind: fc.constant('state' as const), ...key, state: fc.constantFrom('published' as const, 'acked' as const), ms: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ kind: fc.constant('finish' as const), ...key, ms: fc.integer({ min: 0, max: 9 }) }),
    fc.constant({ kind: 'read' as const }),
    fc.record({ kind: fc.constant('tx' as const), commit: fc.boolean(), steps: tie('steps') }),
  ),
  steps: fc.array(tie('step'), { maxLength: 6 }),
}));

describe('open assignments in memory', () => {
  it('equal the table after any writes, in and out of transactions that commit or roll back', () => {
    fc.assert(
      fc.property(fc.array(steps, { minLength: 1, maxLength: 5 }), fc.boolean(), (script, loadFirst) => {
        const { db, state } = store();
        const check = () => {
          const expected = fromTable(db);
          expect(state.openAssignments()).toEqual(expected);
          for (let task = 0; task <= 4; task += 1) {
            for (let attempt = 1; attempt <= 2; attempt += 1) {
              const r = db.prepare<[string, number], AssignmentRecord>('SELECT * FROM assignments WHERE task_id = ? AND attempt = ?').get(`t${task}`, attempt);
              expect(state.assignment(`t${task}`, attempt)).toEqual(r && assignmentRow(r));
            }
          }
        };
        if (loadFirst) check();
        const run = (step: Step): void => {
          switch (step.kind) {
            case 'add':
              try {
                state.addAssignment(`t${step.task}`, step.attempt, 'shell-1', step.ms);
              } catch {
                // The execution exists already: the insert changed nothing.
              }
              break;
            case 'publish':
              state.markPublished(`t${step.task}`, step.attempt);
              break;
            case 'state':
              state.setAssignmentState(`t${step.task}`, step.attempt, step.state, step.ms);
              break;
            case 'finish':
              state.finishAssignment(`t${step.task}`, step.attempt, { outcome: 'succeeded', exitCode: 0, summary: `at ${step.ms}`, outputs: ['o'] }, step.ms);
              break;
            case 'read':
              check();
              break;
            case 'tx':
              try {
                db.transaction(() => {
                  for (const s of step.steps) run(s);
                  if (!step.commit) throw new Rollback();
                })();
              } catch (error) {
                if (!(error instanceof Rollback)) throw error;
              }
              break;
          }
          check();
        };
        for (const list of script) for (const step of list) run(step);
        db.close();
      }),
      { numRuns: 150 },
    );
  });

  it('forgets an execution added in a transaction that rolls back, and restores one it finished', () => {
    const { db, state } = store();
    state.addAssignment('a', 1, 'shell-1', 10);
    expect(state.openAssignments().map((a) => a.taskId)).toEqual(['a']);
    expect(() =>
      db.transaction(() => {
        state.addAssignment('b', 1, 'shell-2', 5);
        state.finishAssignment('a', 1, { outcome: 'failed', exitCode: 1, summary: 'x', outputs: [] }, 20);
        expect(state.openAssignments().map((a) => a.taskId)).toEqual(['b']);
        throw new Error('boom');
      })(),
    ).toThrow('boom');
    expect(state.openAssignments()).toEqual([expect.objectContaining({ taskId: 'a', state: 'pending', finishedMs: null })]);
    expect(state.assignment('b', 1)).toBeUndefined();
  });

  it('undoes a savepoint rolled back inside a transaction that commits', () => {
    const { db, state } = store();
    state.openAssignments(); // loaded outside a transaction
    db.transaction(() => {
      state.addAssignment('a', 1, 'shell-1', 10);
      try {
        db.transaction(() => {
          state.markPublished('a', 1);
          state.addAssignment('b', 1, 'shell-2', 11);
          throw new Error('inner');
        })();
      } catch {
        // rolled back to the savepoint
      }
      expect(state.openAssignments().map((a) => [a.taskId, a.state])).toEqual([['a', 'pending']]);
      state.setAssignmentState('a', 1, AssignmentState.acked, 12);
    })();
    expect(state.openAssignments()).toEqual(fromTable(db));
    expect(state.openAssignments().map((a) => [a.taskId, a.state, a.ackedMs])).toEqual([['a', 'acked', 12]]);
  });

  it('makes the row a write leaves from the row it holds, as the table has it: published, the first ack time kept, finished', () => {
    const { db, state } = store();
    state.openAssignments(); // loaded
    state.addAssignment('a', 1, 'shell-1', 10);
    state.addAssignment('b', 1, 'shell-2', 11);
    state.markPublished('a', 1);
    state.markPublished('a', 1);
    state.setAssignmentState('a', 1, AssignmentState.acked, 12);
    state.setAssignmentState('a', 1, AssignmentState.acked, 13);
    state.setAssignmentState('b', 1, AssignmentState.published);
    state.setAssignmentState('b', 1, AssignmentState.acked);
    expect(state.openAssignments()).toEqual(fromTable(db));
    expect(state.openAssignments().map((a) => [a.taskId, a.state, a.ackedMs])).toEqual([['a', 'acked', 12], ['b', 'acked', null]]);
    state.finishAssignment('a', 1, { outcome: 'succeeded', exitCode: 0, summary: 'ok', outputs: [] }, 14);
    state.setAssignmentState('b', 1, AssignmentState.finished);
    expect(state.openAssignments()).toEqual([]);
    expect(state.assignment('a', 1)).toMatchObject({ state: 'finished', ackedMs: 12, finishedMs: 14 });
  });

  it('reads the table inside a transaction until it has loaded outside one', () => {
    const { db, state } = store();
    expect(() =>
      db.transaction(() => {
        state.addAssignment('a', 1, 'shell-1', 10);
        expect(state.openAssignments().map((a) => a.taskId)).toEqual(['a']);
        throw new Error('boom');
      })(),
    ).toThrow('boom');
    expect(state.openAssignments()).toEqual([]);
  });
});
