/**
 * The supervisor's helpers that report through the event bus: each writes one audit row and one
 * log line per event, on a real SQLite database.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openAudit, type AuditTrail } from '@warren/audit';
import type { Logger } from '@warren/core';
import { loadBoard } from '@warren/kanban';
import { openDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { BlockedTaskReport } from '../src/blocked-tasks.js';
import { rejectionEntry } from '../src/broker-access.js';
import { EventBus } from '../src/event-bus.js';
import { inputRejected } from '../src/input-rejections.js';
import { reportFailedDecision } from '../src/policy-guard.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Line = { level: string; msg: string | undefined; obj: object };

async function setup(): Promise<{ dir: string; audit: AuditTrail; bus: EventBus; lines: Line[]; log: Logger }> {
  const dir = await makeTempDir('warren-event-helpers-');
  cleanups.push(() => dir.close());
  const db = openDatabase(join(dir.path, 'warren.db'));
  cleanups.push(() => db.close());
  const audit = openAudit(db);
  const lines: Line[] = [];
  // The bus's own debug line for an event published nowhere (no broker here) is left out.
  const at = (level: string) => (obj: object, msg?: string) => {
    if (msg !== 'event kept in the audit trail only') lines.push({ level, msg, obj });
  };
  const log: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  const bus = new EventBus({ db, audit, logger: log });
  cleanups.push(() => bus.close());
  return { dir: dir.path, audit, bus, lines, log };
}

describe('helpers that emit events', () => {
  it('BlockedTaskReport emits one task.blocked event per newly blocked task, logged as the warning it always was', async () => {
    const { dir, audit, bus, lines } = await setup();
    const board = join(dir, 'kanban');
    mkdirSync(join(board, 'tasks'), { recursive: true });
    writeFileSync(join(board, 'board.yaml'), 'name: b\ncolumns:\n  - { id: ready, name: Ready }\n  - { id: in_progress, name: In progress }\n  - { id: done, name: Done }\n  - { id: failed, name: Failed }\nroles: { ready: ready, in_progress: in_progress, done: done, failed: failed }\n');
    writeFileSync(join(board, 'tasks', 'loop.md'), '---\nid: loop\ntitle: Loop\nstatus: ready\ncapabilities: []\ndepends_on: [loop]\n---\n');
    const report = new BlockedTaskReport((event, line) => bus.emit(event, line));
    const snapshot = await loadBoard(board);
    expect(snapshot.errors).toEqual([]);
    report.update(snapshot);
    report.update(snapshot);
    const rows = audit.query({ action: 'task.blocked' });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'board', object: 'task:loop' });
    const reason = (rows[0]!.details as { reason: string }).reason;
    expect(lines).toEqual([{ level: 'warn', msg: `task loop is blocked: ${reason}`, obj: { taskId: 'loop', reason } }]);
  });

  it('reportFailedDecision only logs before the bus exists, and emits policy.error with the same line after', async () => {
    const { audit, bus, lines, log } = await setup();
    const failed = { sub: 'bob', obj: 'task:t1', act: 'assign', error: new Error('Invalid regular expression') };
    const line = { level: 'error', msg: 'the policy could not decide; the request is denied', obj: { sub: 'bob', obj: 'task:t1', act: 'assign', reason: 'Invalid regular expression' } };
    reportFailedDecision(log, undefined, failed);
    expect(audit.lastSeq()).toBe(0);
    reportFailedDecision(log, (event, override) => bus.emit(event, override), failed);
    expect(audit.query()).toMatchObject([{ actor: 'supervisor', action: 'policy.error', object: 'task:t1', details: { sub: 'bob', act: 'assign', message: 'Invalid regular expression' } }]);
    expect(lines).toEqual([line, line]);
  });

  it('inputRejected and rejectionEntry are events of their kinds, logged at debug and as the broker warning', async () => {
    const { audit, bus, lines } = await setup();
    bus.emit(inputRejected({ kind: 'task', path: 'tasks/x.md', line: 3, message: 'tasks/x.md:3: bad' }));
    bus.emit(rejectionEntry('warren.result.shell-1', 'signature', 'missing'));
    expect(audit.query().map((r) => [r.action, r.object])).toEqual([
      ['input.rejected', 'file:tasks/x.md'],
      ['broker.rejected', 'broker:warren.result.shell-1'],
    ]);
    expect(lines).toEqual([
      { level: 'debug', msg: 'input rejected', obj: { path: 'tasks/x.md', kind: 'task', line: 3, message: 'tasks/x.md:3: bad' } },
      { level: 'warn', msg: 'broker message rejected', obj: { subject: 'warren.result.shell-1', field: 'signature', reason: 'missing' } },
    ]);
  });
});
