import { describe, expect, it } from 'vitest';
import type { BoardRoles } from '@warren/kanban';
import { boardFields } from '../src/board/writer.js';
import { classifyResult, decideSettlement, oneLine, type ReportedResult, type ResultContext } from '../src/executions/decisions.js';
import { isIdle, templateBackingOff, type IdleFacts } from '../src/idle.js';
import { effectivePriority } from '../src/planning.js';
import { TaskState } from '@warren/registry';
import type { RetryPolicy } from '../src/templates.js';

const retry: RetryPolicy = { initialIntervalMs: 1_000, backoffCoefficient: 2, maximumIntervalMs: 5_000, maximumAttempts: 3 };

describe('decideSettlement', () => {
  const running = (attempt: number) => ({ attempt, state: TaskState.running });
  it.each([
    ['success ends the task', running(1), 1, 'succeeded', retry, { kind: 'succeeded' }],
    ['a failure with attempts left retries after the first interval', running(1), 1, 'failed', retry, { kind: 'retry', delayMs: 1_000, maxAttempts: 3 }],
    ['the second retry waits twice as long', running(2), 2, 'failed', retry, { kind: 'retry', delayMs: 2_000, maxAttempts: 3 }],
    ['the last attempt failing is final', running(3), 3, 'failed', retry, { kind: 'final', state: TaskState.failed, maxAttempts: 3 }],
    ['a timeout uses the retry policy too', running(1), 1, 'timed_out', retry, { kind: 'retry', delayMs: 1_000, maxAttempts: 3 }],
    ['a final timeout is timed_out', running(3), 3, 'timed_out', retry, { kind: 'final', state: TaskState.timedOut, maxAttempts: 3 }],
    ['no retry policy: the first failure is final', running(1), 1, 'failed', undefined, { kind: 'final', state: TaskState.failed, maxAttempts: 1 }],
    ['a cancel is never retried', running(1), 1, 'cancelled', retry, { kind: 'final', state: TaskState.cancelled, maxAttempts: 1 }],
    ['a lost execution retries at once up to the lost limit', running(2), 2, 'lost', undefined, { kind: 'retry', delayMs: 0, maxAttempts: 4 }],
    ['a lost execution waits the backoff when the template has one', running(1), 1, 'lost', retry, { kind: 'retry', delayMs: 1_000, maxAttempts: 4 }],
    ['a lost execution past the lost limit fails', running(4), 4, 'lost', retry, { kind: 'final', state: TaskState.failed, maxAttempts: 4 }],
    ['a result for an older attempt changes nothing', running(2), 1, 'succeeded', retry, { kind: 'none' }],
    ['a task that already ended changes nothing', { attempt: 1, state: TaskState.succeeded }, 1, 'failed', retry, { kind: 'none' }],
    ['a task already back to ready changes nothing', { attempt: 1, state: TaskState.ready }, 1, 'lost', retry, { kind: 'none' }],
    ['an unknown task changes nothing', undefined, 1, 'succeeded', retry, { kind: 'none' }],
  ] as const)('%s', (_name, row, attempt, outcome, policy, expected) => {
    expect(decideSettlement({ row, attempt, outcome, retry: policy, maxLostAttempts: 4 })).toEqual(expected);
  });
});

describe('classifyResult', () => {
  const result = (over: Partial<ReportedResult> = {}): ReportedResult => ({ agent: 'shell-1', outcome: 'failed', exitCode: 3, signal: null, summary: 'disk full\n', ...over });
  const quiet: ResultContext = { stopping: undefined, cancelledByOperator: false, failure: undefined, failTasks: undefined };
  it.each([
    ['success keeps its summary', result({ outcome: 'succeeded', exitCode: 0, summary: ' 42 lines ' }), quiet, { outcome: 'succeeded', reason: '42 lines' }],
    ['success without a summary says so', result({ outcome: 'succeeded', exitCode: 0, summary: '' }), quiet, { outcome: 'succeeded', reason: 'succeeded' }],
    ['a failure names its exit code and output', result(), quiet, { outcome: 'failed', reason: 'failed (exit 3): disk full' }],
    ['a signal is named', result({ exitCode: null, signal: 'SIGKILL', summary: 'Killed' }), quiet, { outcome: 'failed', reason: 'failed (SIGKILL): Killed' }],
    ['a cancel nobody asked for is an interruption', result({ outcome: 'cancelled', exitCode: null }), { ...quiet, stopping: 'sleep' }, { outcome: 'lost', reason: 'interrupted: agent shell-1 was stopped (sleep)' }],
    ['a cancel an operator asked for is final', result({ outcome: 'cancelled', exitCode: null, summary: 'cancelled' }), { ...quiet, cancelledByOperator: true }, { outcome: 'cancelled', reason: 'cancelled: cancelled' }],
    ['a task killed while its agent stops is interrupted', result({ exitCode: null, signal: 'SIGTERM' }), { ...quiet, stopping: 'operator' }, { outcome: 'lost', reason: 'interrupted: agent shell-1 was stopped (operator)' }],
    ['a limit explains a failure better than its output', result({ exitCode: 137, summary: 'Killed' }), { ...quiet, failure: 'out of memory (limit 64 MiB)' }, { outcome: 'failed', reason: 'failed (exit 137): out of memory (limit 64 MiB)' }],
    ['the process limit that stopped the agent is the reason', result({ exitCode: null, signal: 'SIGKILL' }), { ...quiet, stopping: 'watchdog', failure: 'process limit reached (64)', failTasks: 'process limit reached (64)' }, { outcome: 'failed', reason: 'failed: process limit reached (64)' }],
  ] as const)('%s', (_name, r, context, expected) => {
    expect(classifyResult(r, context)).toEqual(expected);
  });

  it('keeps a reason on one line of at most 500 characters', () => {
    const { reason } = classifyResult(result({ summary: `line one\nline two\t${'x'.repeat(900)}` }), quiet);
    expect(reason).not.toMatch(/\n/);
    expect(reason.length).toBe(500);
    expect(reason.endsWith('…')).toBe(true);
    expect(oneLine('  a \n b  ', 10)).toBe('a b');
  });
});

describe('boardFields', () => {
  const roles: BoardRoles = { ready: 'ready', in_progress: 'in_progress', done: 'done', failed: 'failed', backlog: 'backlog' } as BoardRoles;
  const now = '2026-12-06T12:00:00.000Z';
  it.each([
    ['assigned: in progress with the assignee', { state: TaskState.assigned, agent: 'shell-1', reason: null, attempt: 1 }, { status: 'in_progress', assignee: 'shell-1', started: now, updated: now }],
    ['running: the same', { state: TaskState.running, agent: 'shell-1', reason: null, attempt: 1 }, { status: 'in_progress', assignee: 'shell-1', started: now, updated: now }],
    ['succeeded: done with the result', { state: TaskState.succeeded, agent: 'shell-1', reason: '42 lines', attempt: 1 }, { status: 'done', result: '42 lines', completed: now, updated: now }],
    ['succeeded without a reason', { state: TaskState.succeeded, agent: 'shell-1', reason: null, attempt: 1 }, { status: 'done', result: 'succeeded', completed: now, updated: now }],
    ['failed: the failed column with why', { state: TaskState.failed, agent: 'shell-1', reason: 'failed (exit 3): x', attempt: 2 }, { status: 'failed', result: 'failed (exit 3): x', completed: now, updated: now }],
    ['timed out without a reason names the state', { state: TaskState.timedOut, agent: 'shell-1', reason: null, attempt: 1 }, { status: 'failed', result: 'timed_out', completed: now, updated: now }],
    ['cancelled goes to the failed column too', { state: TaskState.cancelled, agent: null, reason: 'cancelled by ann', attempt: 1 }, { status: 'failed', result: 'cancelled by ann', completed: now, updated: now }],
    ['ready again after a failed attempt shows it', { state: TaskState.ready, agent: null, reason: 'failed (exit 1): x', attempt: 1 }, { status: 'ready', assignee: null, result: 'attempt 1: failed (exit 1): x', updated: now }],
    ['ready with nothing to say clears the assignee', { state: TaskState.ready, agent: null, reason: null, attempt: 0 }, { status: 'ready', assignee: null, updated: now }],
  ] as const)('%s', (_name, row, expected) => {
    expect(boardFields(row, roles, now)).toEqual(expected);
  });
});

describe('isIdle', () => {
  const idle: IdleFacts = {
    boardLoaded: true,
    boardBusy: false,
    queuedEvents: 0,
    spawning: 0,
    plan: { assignments: [], spawns: [] },
    openExecutions: 0,
    templateBackingOff: false,
    taskBackingOff: false,
    pendingBoardWrites: 0,
    agents: [{ ready: true, stopping: false, load: 0 }],
  };
  it('is idle when nothing is left to do', () => expect(isIdle(idle)).toBe(true));
  it.each<[string, Partial<IdleFacts>]>([
    ['no board read yet', { boardLoaded: false }],
    ['board files changed or being written', { boardBusy: true }],
    ['events queued', { queuedEvents: 1 }],
    ['an agent being spawned', { spawning: 1 }],
    ['an assignment planned', { plan: { assignments: [{ taskId: 't', agent: 'a' }], spawns: [] } }],
    ['a spawn planned', { plan: { assignments: [], spawns: [{ template: 'shell', taskIds: ['t'] }] } }],
    ['an execution open', { openExecutions: 1 }],
    ['a template backing off', { templateBackingOff: true }],
    ['a task backing off', { taskBackingOff: true }],
    ['a card not yet written', { pendingBoardWrites: 1 }],
    ['an agent still starting', { agents: [{ ready: false, stopping: false, load: 0 }] }],
    ['an agent holding a task', { agents: [{ ready: true, stopping: false, load: 1 }] }],
  ])('is not idle with %s', (_name, change) => expect(isIdle({ ...idle, ...change })).toBe(false));
  it('an agent being stopped keeps the run alive until its exit is applied (it still holds an instance of its template)', () => {
    expect(isIdle({ ...idle, agents: [{ ready: true, stopping: true, load: 0 }] })).toBe(false);
    expect(isIdle({ ...idle, agents: [{ ready: false, stopping: true, load: 0 }] })).toBe(false);
  });
});

describe('templateBackingOff', () => {
  it.each([
    ['no template failed', [], false],
    ['a template waits out its backoff', [{ count: 1, nextAtMs: 2_000 }], true],
    // Only an agent of the template becoming ready ends a backoff: with no task left for it none
    // starts, and a wait counted after it is over held a run until idle forever.
    ['the wait is over', [{ count: 2, nextAtMs: 1_000 }], false],
    ['the wait ended long ago', [{ count: 1, nextAtMs: 10 }], false],
    ['a template given up', [{ count: 5, nextAtMs: 2_000 }], false],
    ['one of two templates still waits', [{ count: 5, nextAtMs: 2_000 }, { count: 1, nextAtMs: 1_001 }], true],
  ] as const)('%s: %s', (_name, failures, expected) => {
    expect(templateBackingOff(failures, 1_000, 5)).toBe(expected);
  });
});

describe('effectivePriority', () => {
  it.each([
    ['a fresh task keeps its rank', 1, 1_000, 1_000, 1],
    ['one level per ageing interval', 0, 0, 300_000, 1],
    ['a low task that waited three intervals ranks with a fresh urgent one', 0, 0, 900_000, 3],
    ['no ready time: no ageing', 2, null, 10_000_000, 2],
    ['a clock behind the ready time does not lower the rank', 2, 5_000, 1_000, 2],
  ] as const)('%s', (_name, rank, readySince, now, expected) => {
    expect(effectivePriority(rank, readySince, now, 300_000)).toBe(expected);
  });
});
