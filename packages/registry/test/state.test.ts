import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate } from '@warren/store';
import { AssignmentState, migrateState, queuePositions, StateStore, TaskState, isTerminal } from '@warren/registry';
import { open, taskRow, tempDir } from './support.js';

/** The state schema as databases written before migration 3 have it. */
const OLD_SCHEMA = [
  {
    version: 1,
    sql: `
      CREATE TABLE tasks (id TEXT PRIMARY KEY, path TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
        agent TEXT, reason TEXT, board_hash TEXT, board_sync TEXT NOT NULL DEFAULT 'clean', updated_ms INTEGER NOT NULL) STRICT;
      CREATE TABLE assignments (task_id TEXT NOT NULL, attempt INTEGER NOT NULL, agent TEXT NOT NULL, state TEXT NOT NULL,
        outcome TEXT, exit_code INTEGER, summary TEXT, outputs TEXT NOT NULL DEFAULT '[]', assigned_ms INTEGER NOT NULL,
        finished_ms INTEGER, PRIMARY KEY (task_id, attempt)) STRICT;
      CREATE INDEX assignments_open ON assignments (state) WHERE state != 'finished';
      CREATE TABLE agents (name TEXT PRIMARY KEY, template TEXT NOT NULL, uid INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER,
        started_ms INTEGER, stopped_ms INTEGER, last_exit TEXT, tasks_done INTEGER NOT NULL DEFAULT 0) STRICT;
    `,
  },
  {
    version: 2,
    sql: `
      ALTER TABLE tasks ADD COLUMN not_before_ms INTEGER;
      ALTER TABLE tasks ADD COLUMN ready_since_ms INTEGER;
      ALTER TABLE tasks ADD COLUMN queue_position INTEGER;
      ALTER TABLE tasks ADD COLUMN queue_reason TEXT;
      CREATE TABLE commands (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, requested_by TEXT NOT NULL,
        requested_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued', outcome TEXT, done_ms INTEGER) STRICT;
    `,
  },
];

describe('state tables', () => {
  it('migrates a database written before migration 3 and keeps its rows, the new times null', () => {
    const path = join(tempDir(), 'warren.db');
    const old = open(path);
    migrate(old, 'supervisor', OLD_SCHEMA);
    old.prepare("INSERT INTO tasks (id, path, state, attempt, agent, updated_ms) VALUES ('a', 'tasks/a.md', 'succeeded', 1, 'shell-1', 5)").run();
    old.prepare("INSERT INTO assignments (task_id, attempt, agent, state, outcome, assigned_ms, finished_ms) VALUES ('a', 1, 'shell-1', 'finished', 'succeeded', 2, 5)").run();
    old.prepare("INSERT INTO commands (kind, target, requested_by, requested_ms) VALUES ('agent.stop', 'shell-1', 'user:root', 3)").run();
    old.close();

    const db = open(path);
    migrateState(db);
    migrateState(db); // idempotent
    const state = new StateStore(db);
    expect(state.task('a')).toMatchObject({ state: TaskState.succeeded, attempt: 1, agent: 'shell-1' });
    expect(state.assignment('a', 1)).toEqual({
      taskId: 'a', attempt: 1, agent: 'shell-1', state: 'finished', outcome: 'succeeded', exitCode: null, summary: null, outputs: [],
      readySinceMs: null, assignedMs: 2, ackedMs: null, finishedMs: 5,
    });
    expect(state.queuedCommands()).toMatchObject([{ kind: 'agent.stop', target: 'shell-1', state: 'queued' }]);
  });

  it('records when the task became ready and when the agent took it, the first acknowledgement winning', () => {
    const db = open(join(tempDir(), 'warren.db'));
    migrateState(db);
    const state = new StateStore(db);
    state.putTask(taskRow('a', { readySinceMs: 100 }));
    state.putTask(taskRow('b', { readySinceMs: 100 }));
    state.addAssignment('a', 1, 'shell-1', 250); // from the task row, read before the caller rewrites it
    state.addAssignment('b', 1, 'shell-1', 250, 175); // given
    state.addAssignment('c', 1, 'shell-1', 300); // no task row: the assignment time
    expect([state.assignment('a', 1)?.readySinceMs, state.assignment('b', 1)?.readySinceMs, state.assignment('c', 1)?.readySinceMs]).toEqual([100, 175, 300]);

    state.setAssignmentState('a', 1, AssignmentState.published);
    expect(state.assignment('a', 1)).toMatchObject({ state: 'published', ackedMs: null });
    state.setAssignmentState('a', 1, AssignmentState.acked, 400);
    state.setAssignmentState('a', 1, AssignmentState.acked, 450); // a redelivered ack
    expect(state.assignment('a', 1)).toMatchObject({ state: 'acked', ackedMs: 400 });
    state.setAssignmentState('b', 1, AssignmentState.acked); // no time given: none recorded
    expect(state.assignment('b', 1)).toMatchObject({ state: 'acked', ackedMs: null });

    expect(state.finishAssignment('a', 1, { outcome: 'succeeded', exitCode: 0, summary: 'ok', outputs: ['out.txt'] }, 500)).toBe(true);
    expect(state.finishAssignment('a', 1, { outcome: 'failed', exitCode: 1, summary: 'late', outputs: [] }, 600)).toBe(false);
    state.setAssignmentState('a', 1, AssignmentState.acked, 700); // a finished execution is left alone
    expect(state.assignment('a', 1)).toMatchObject({ state: 'finished', outcome: 'succeeded', ackedMs: 400, finishedMs: 500, outputs: ['out.txt'] });
    expect(state.openAssignments().map((a) => a.taskId)).toEqual(['b', 'c']);
  });

  it('numbers the stored queue positions densely, ties by id, only for ready tasks', () => {
    const rows = [
      taskRow('d', { queuePosition: 20 }),
      taskRow('a', { queuePosition: 9 }),
      taskRow('c', { queuePosition: 5 }),
      taskRow('b', { queuePosition: 9 }),
      taskRow('e', { state: TaskState.running, queuePosition: 1 }),
      taskRow('f'),
    ];
    expect([...queuePositions(rows.sort((x, y) => (x.id < y.id ? -1 : 1)))]).toEqual([['c', 1], ['a', 2], ['b', 3], ['d', 4]]);
  });

  it('calls succeeded, failed, timed out and cancelled terminal', () => {
    const table: [TaskState, boolean][] = [
      [TaskState.ready, false], [TaskState.assigned, false], [TaskState.running, false], [TaskState.held, false],
      [TaskState.succeeded, true], [TaskState.failed, true], [TaskState.timedOut, true], [TaskState.cancelled, true],
    ];
    for (const [state, terminal] of table) expect([state, isTerminal(state)]).toEqual([state, terminal]);
  });
});
