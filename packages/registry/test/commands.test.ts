import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SqliteDatabase } from '@warren/store';
import {
  CommandKind,
  CommandQueue,
  commandRequest,
  migrateState,
  RegistryError,
  runCommands,
  type CommandHandlers,
  type CommandRow,
} from '@warren/registry';
import { open, tempDir } from './support.js';

function queueAt(path: string): { db: SqliteDatabase; queue: CommandQueue } {
  const db = open(path);
  migrateState(db);
  return { db, queue: new CommandQueue(db) };
}

/** Handlers that record each call and answer `<kind> <target> ok`, except where `fail` names the target. */
function recordingHandlers(calls: string[], fail: ReadonlySet<string> = new Set()): CommandHandlers {
  const handler = (command: CommandRow, nowMs: number) => {
    calls.push(`${command.kind} ${command.target} @${nowMs}`);
    if (fail.has(command.target)) throw new Error(`no agent named ${command.target}`);
    return `${command.kind} ${command.target} ok`;
  };
  return Object.fromEntries(Object.values(CommandKind).map((kind) => [kind, handler])) as unknown as CommandHandlers;
}

describe('the command queue', () => {
  it('keeps queued commands in a file until finished, oldest first, for any connection', () => {
    const path = join(tempDir(), 'warren.db');
    const { queue } = queueAt(path);
    const first = queue.enqueue(CommandKind.agentStop, 'shell-1', 'user:alice', 10);
    const second = queue.enqueue(CommandKind.taskRetry, 'count-lines', 'user:bob', 11);
    expect(second).toBeGreaterThan(first);

    const other = queueAt(path).queue; // as the supervisor's connection sees it
    expect(other.queued().map((c) => [c.id, c.kind, c.target, c.requestedBy, c.requestedMs, c.state])).toEqual([
      [first, 'agent.stop', 'shell-1', 'user:alice', 10, 'queued'],
      [second, 'task.retry', 'count-lines', 'user:bob', 11, 'queued'],
    ]);
    other.finish(first, 'failed', 'no agent named shell-1', 20);
    expect(queue.get(first)).toEqual({
      id: first, kind: 'agent.stop', target: 'shell-1', requestedBy: 'user:alice', requestedMs: 10, state: 'failed', outcome: 'no agent named shell-1', doneMs: 20,
    });
    expect(queue.queued().map((c) => c.id)).toEqual([second]);
    expect(queue.get(999)).toBeUndefined();
  });

  it('refuses a command of an unknown kind or without target or requester, naming what is wrong', () => {
    const { queue } = queueAt(join(tempDir(), 'warren.db'));
    const cases: [string, string, string, RegExp][] = [
      ['agent.explode', 'shell-1', 'user:alice', /command kind 'agent.explode' is not one of agent.start, /],
      ['agent.stop', '', 'user:alice', /command agent.stop: the target is empty/],
      ['agent.stop', 'shell-1', '', /command agent.stop shell-1: 'requestedBy' is empty/],
    ];
    for (const [kind, target, by, message] of cases) {
      const attempt = () => queue.enqueue(kind as CommandKind, target, by, 1);
      expect(attempt).toThrow(RegistryError);
      expect(attempt).toThrow(message);
    }
    expect(queue.queued()).toEqual([]);
  });

  it('waits for the outcome another connection writes, and returns the queued row when nobody runs it in time', async () => {
    const path = join(tempDir(), 'warren.db');
    const { queue } = queueAt(path);
    const supervisor = queueAt(path).queue;
    const id = queue.enqueue(CommandKind.agentWake, 'shell-1', 'user:alice', 1);
    const waiting = queue.waitForOutcome(id, { timeoutMs: 60_000, pollMs: 5 });
    setTimeout(() => supervisor.finish(id, 'done', 'shell-1 is starting', 2), 30);
    await expect(waiting).resolves.toMatchObject({ id, state: 'done', outcome: 'shell-1 is starting' });

    const unanswered = queue.enqueue(CommandKind.agentSleep, 'shell-1', 'user:alice', 3);
    await expect(queue.waitForOutcome(unanswered, { timeoutMs: 20, pollMs: 5 })).resolves.toMatchObject({ state: 'queued', outcome: null });
    await expect(queue.waitForOutcome(unanswered, { timeoutMs: 0 })).resolves.toMatchObject({ state: 'queued' });
    await expect(queue.waitForOutcome(4242, { timeoutMs: 0 })).rejects.toThrow('no command 4242 in the queue');
  });
});

describe('runCommands', () => {
  it('runs each queued command once through the handler of its kind, oldest first, and writes its outcome', () => {
    const { queue } = queueAt(join(tempDir(), 'warren.db'));
    queue.enqueue(CommandKind.agentStop, 'shell-1', 'user:alice', 1);
    queue.enqueue(CommandKind.taskCancel, 'count-lines', 'user:alice', 2);
    queue.enqueue(CommandKind.agentStart, 'ghost-1', 'user:alice', 3);
    const calls: string[] = [];
    const done: string[] = [];
    const runs = runCommands(queue, recordingHandlers(calls, new Set(['ghost-1'])), { onDone: (c, state, outcome) => done.push(`${c.id} ${state}: ${outcome}`) }, 50);

    expect(calls).toEqual(['agent.stop shell-1 @50', 'task.cancel count-lines @50', 'agent.start ghost-1 @50']);
    expect(runs.map((r) => [r.command.target, r.state, r.outcome])).toEqual([
      ['shell-1', 'done', 'agent.stop shell-1 ok'],
      ['count-lines', 'done', 'task.cancel count-lines ok'],
      ['ghost-1', 'failed', 'no agent named ghost-1'],
    ]);
    expect(done).toEqual(['1 done: agent.stop shell-1 ok', '2 done: task.cancel count-lines ok', '3 failed: no agent named ghost-1']);
    expect([1, 2, 3].map((id) => [queue.get(id)?.state, queue.get(id)?.doneMs])).toEqual([['done', 50], ['done', 50], ['failed', 50]]);

    expect(runCommands(queue, recordingHandlers(calls), {}, 60)).toEqual([]); // nothing runs twice
    expect(calls).toHaveLength(3);
  });

  it('fails a command the policy denies without calling its handler, and one whose decision throws with the error', () => {
    const { queue } = queueAt(join(tempDir(), 'warren.db'));
    queue.enqueue(CommandKind.agentDelete, 'shell-1', 'user:mallory', 1);
    queue.enqueue(CommandKind.taskRetry, 'count-lines', 'user:alice', 2);
    queue.enqueue(CommandKind.agentRestart, 'shell-2', 'user:alice', 3);
    const asked: string[] = [];
    const calls: string[] = [];
    const runs = runCommands(
      queue,
      recordingHandlers(calls),
      {
        authorize: (command) => {
          const { sub, obj, act } = commandRequest(command);
          asked.push(`${sub} ${obj} ${act}`);
          if (command.target === 'shell-2') throw new Error('policy error: the matcher failed');
          return sub !== 'user:mallory';
        },
      },
      10,
    );
    expect(asked).toEqual(['user:mallory agent:shell-1 delete', 'user:alice task:count-lines retry', 'user:alice agent:shell-2 restart']);
    expect(calls).toEqual(['task.retry count-lines @10']);
    expect(runs.map((r) => [r.state, r.outcome])).toEqual([
      ['failed', 'policy denies user:mallory delete on agent:shell-1'],
      ['done', 'task.retry count-lines ok'],
      ['failed', 'policy error: the matcher failed'],
    ]);
  });

  it('fails a row of a kind it has no handler for, naming the kind, and runs the rest', () => {
    const { db, queue } = queueAt(join(tempDir(), 'warren.db'));
    db.prepare("INSERT INTO commands (kind, target, requested_by, requested_ms) VALUES ('agent.explode', 'shell-1', 'user:alice', 1)").run();
    queue.enqueue(CommandKind.agentWake, 'shell-1', 'user:alice', 2);
    const calls: string[] = [];
    const runs = runCommands(queue, recordingHandlers(calls), { authorize: () => true }, 5);
    expect(runs.map((r) => [r.command.kind, r.state, r.outcome])).toEqual([
      ['agent.explode', 'failed', "unknown command kind 'agent.explode'"],
      ['agent.wake', 'done', 'agent.wake shell-1 ok'],
    ]);
    expect(calls).toEqual(['agent.wake shell-1 @5']);
  });

  it('writes the outcome and what onDone writes in one transaction: a throw there leaves the command queued', () => {
    const { db, queue } = queueAt(join(tempDir(), 'warren.db'));
    db.exec('CREATE TABLE notes (text TEXT NOT NULL) STRICT');
    const note = db.prepare<[string]>('INSERT INTO notes (text) VALUES (?)');
    queue.enqueue(CommandKind.agentStop, 'shell-1', 'user:alice', 1);
    queue.enqueue(CommandKind.agentStop, 'shell-2', 'user:alice', 2);
    const onDone = (command: CommandRow, state: string) => {
      note.run(`${command.target} ${state}`);
      if (command.target === 'shell-2') throw new Error('disk I/O error');
    };
    expect(() => runCommands(queue, recordingHandlers([]), { onDone }, 7)).toThrow('disk I/O error');
    expect(db.prepare('SELECT text FROM notes').pluck().all()).toEqual(['shell-1 done']);
    expect(queue.queued().map((c) => c.target)).toEqual(['shell-2']);
    expect(queue.get(1)?.state).toBe('done');

    let transactions = 0;
    const transaction = (fn: () => void) => {
      transactions += 1;
      db.transaction(fn)();
    };
    runCommands(queue, recordingHandlers([]), { transaction }, 8);
    expect([transactions, queue.get(2)?.state]).toEqual([1, 'done']);
  });
});
