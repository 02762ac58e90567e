import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type CliProcess, type CliResult, type TestLayout } from '../support/cli.js';
import { agentProcessesOf, audit, cardValue, started, waitDuring, writeAtomically } from './support.js';

const { layouts, running } = cleanUpAfterEach();

beforeAll(() => requireMachine());

/** A shell command that waits for the file `go` in its workspace, then prints `text`. */
const waitForGo = (text: string) => `while [ ! -e go ]; do sleep 0.2; done; echo ${text}`;

/** Lets a task started with {@link waitForGo} finish: writes `go` into its workspace. */
function letFinish(made: TestLayout, taskId: string): void {
  const agent = audit(made, '--action', 'task.assign').find((r) => r.object === `task:${taskId}`)?.details.agent as string;
  const workspace = join(made.dir, 'home', 'shell', agent, 'work', taskId);
  mkdirSync(workspace, { recursive: true });
  writeFileSync(join(workspace, 'go'), '');
}

/** Awaits a run's end; kills it and fails after `timeoutMs`. */
async function ended(run: CliProcess, timeoutMs = 120_000): Promise<CliResult> {
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const result = await run.done;
  clearTimeout(timer);
  if (result.signal === 'SIGKILL') throw new Error(`the run did not end in ${timeoutMs} ms\n${result.stderr.slice(-3000)}`);
  return result;
}

/** A person's edit of card `id`: its status set to `status`, the file replaced as editors do. */
function setStatus(made: TestLayout, id: string, status: string): void {
  const path = join(made.dir, 'kanban', 'tasks', `${id}.md`);
  writeAtomically(path, readFileSync(path, 'utf8').replace(/^status: .*$/m, `status: ${status}`));
}

describe("a person's edits of running cards win", () => {
  it('a running card moved to backlog has its execution cancelled and keeps the column; a deleted card is reported once and its run ends (#38, #39)', async () => {
    const made = makeTestLayout({ rc: shellTask('rc', waitForGo('rc-done')), rd: shellTask('rd', 'sleep 300; echo rd-done') });
    layouts.push(made);
    const run = startWarren(made.args('run', '--until-idle'));
    running.push(run);
    await waitDuring(run, 'both tasks running, their cards in progress', () =>
      started(made, 'rc') && started(made, 'rd') && cardValue(made, 'rc', 'status') === 'in_progress' && cardValue(made, 'rd', 'status') === 'in_progress',
    );

    unlinkSync(join(made.dir, 'kanban', 'tasks', 'rc.md'));
    setStatus(made, 'rd', 'backlog');
    await waitDuring(run, 'the move and the deletion to be audited', () => {
      const rows = audit(made, '--action', 'task.*');
      return rows.some((r) => r.action === 'task.cancelled' && r.object === 'task:rd') && rows.some((r) => r.action === 'task.card_deleted' && r.object === 'task:rc');
    });
    letFinish(made, 'rc');
    const end = await ended(run);
    expect(end.code, end.stderr.slice(-3000)).toBe(0);

    // rd: cancelled through its agent (it would have slept 300 s), the card left in backlog.
    expect(cardValue(made, 'rd', 'status')).toBe('backlog');
    expect(cardValue(made, 'rd', 'result')).toBeUndefined();
    const rows = audit(made);
    const cancelled = rows.filter((r) => r.action === 'task.cancelled' && r.object === 'task:rd');
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]!.details).toMatchObject({ attempt: 1, column: 'backlog', reason: 'moved to backlog on the board', requeued: false });
    // The execution's own end is in the audit only.
    expect(rows.find((r) => r.action === 'task.fail' && r.object === 'task:rd')?.details.outcome).toBe('cancelled');
    expect(rows.filter((r) => r.action === 'task.assign' && r.object === 'task:rd')).toHaveLength(1);
    expect(end.stdout).toMatch(/board {3}rd: moved to backlog on the board: attempt 1 cancelled/);

    // rc: reported once, ran to its end, its result in the audit; no card made again.
    expect(rows.filter((r) => r.action === 'task.card_deleted' && r.object === 'task:rc')).toHaveLength(1);
    expect(rows.some((r) => r.action === 'task.complete' && r.object === 'task:rc')).toBe(true);
    expect(existsSync(join(made.dir, 'kanban', 'tasks', 'rc.md'))).toBe(false);
    expect(end.stderr).toMatch(/the card of task rc .* was deleted during attempt 1/);
    expect(agentProcessesOf(made)).toEqual([]);
  }, 300_000);

  it('a running card moved back to ready has its execution cancelled and runs again as a new attempt', async () => {
    const made = makeTestLayout({ rr: shellTask('rr', 'test -e "$HOME/second" && echo second-run || { touch "$HOME/second"; sleep 300; }') }, { copyAgents: true });
    layouts.push(made);
    // One agent, so both attempts share a home.
    const template = join(made.dir, 'agents', 'shell.yaml');
    writeFileSync(template, readFileSync(template, 'utf8').replace(/^maxInstances: \d+$/m, 'maxInstances: 1'));
    const run = startWarren(made.args('run', '--until-idle'));
    running.push(run);
    await waitDuring(run, 'the task running, its card in progress', () => started(made, 'rr') && cardValue(made, 'rr', 'status') === 'in_progress');
    setStatus(made, 'rr', 'ready');
    const end = await ended(run);
    expect(end.code, end.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'rr', 'status')).toBe('done');
    expect(parse(cardValue(made, 'rr', 'result')!)).toBe('second-run');
    const rows = audit(made);
    expect(rows.filter((r) => r.action === 'task.cancelled' && r.object === 'task:rr').map((r) => r.details)).toMatchObject([{ attempt: 1, column: 'ready', requeued: true }]);
    expect(rows.filter((r) => r.action === 'task.assign' && r.object === 'task:rr').map((r) => r.details.attempt)).toEqual([1, 2]);
  }, 300_000);

  it('a card moved to backlog while the supervisor was down stays there: the execution is cancelled, not run again (#42)', async () => {
    const made = makeTestLayout({ slow: shellTask('slow', 'sleep 300; echo slow-done') });
    layouts.push(made);
    const up = startWarren(made.args('up'));
    running.push(up);
    await waitDuring(up, 'the task running, its card in progress', () => started(made, 'slow') && cardValue(made, 'slow', 'status') === 'in_progress');
    up.child.kill('SIGKILL');
    await up.done;
    // The sandboxes and the embedded nats-server die with the supervisor.
    await waitFor('the killed supervisor’s agents to end', () => agentProcessesOf(made).length === 0, 30_000);

    setStatus(made, 'slow', 'backlog');
    const rerun = await warren(made.args('run', '--until-idle'));
    expect(rerun.code, rerun.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'slow', 'status')).toBe('backlog');

    const rows = audit(made);
    const recovered = rows.filter((r) => r.action === 'supervisor.recovered');
    expect(recovered[recovered.length - 1]!.details).toMatchObject({ requeued: [], lostExecutions: [], movedOnTheBoard: ['slow:1'] });
    const cancelled = rows.filter((r) => r.action === 'task.cancelled' && r.object === 'task:slow');
    expect(cancelled.map((r) => r.details.reason)).toEqual(['moved to backlog on the board while the supervisor was stopped']);
    expect(rows.filter((r) => r.action === 'task.assign' && r.object === 'task:slow')).toHaveLength(1);
    expect(agentProcessesOf(made)).toEqual([]);
  }, 300_000);

  it('a card moved to backlog after its task ended, before Warren wrote the result, stays there: the pending write is dropped', async () => {
    const made = makeTestLayout({ ended: shellTask('ended', 'echo ended-ok') });
    layouts.push(made);
    // The supervisor dies right after committing the result, before the card shows it.
    const crashing = startWarren(made.args('run', '--until-idle'), { WARREN_FAULT_INJECTION: '1', WARREN_CRASH_AT: 'result.committed' });
    running.push(crashing);
    const crashed = await crashing.done;
    expect(crashed.signal, crashed.stderr.slice(-3000)).toBe('SIGKILL');
    expect(crashed.stderr).toContain("FAULT INJECTION: this supervisor will die at 'result.committed'");
    await waitFor('the killed supervisor’s agents to end', () => agentProcessesOf(made).length === 0, 30_000);
    expect(cardValue(made, 'ended', 'status')).not.toBe('done');

    setStatus(made, 'ended', 'backlog');
    const rerun = await warren(made.args('run', '--until-idle'));
    expect(rerun.code, rerun.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'ended', 'status')).toBe('backlog');
    const dropped = audit(made, '--action', 'board.write_dropped');
    expect(dropped.map((r) => [r.object, r.details.column, r.details.state])).toEqual([['task:ended', 'backlog', 'succeeded']]);
    expect(audit(made, '--action', 'task.assign')).toHaveLength(1);
  }, 300_000);

  it('a card moved back to ready while it was down runs again', async () => {
    const made = makeTestLayout({ again: shellTask('again', 'test -e "$HOME/second" && echo second-run || { touch "$HOME/second"; sleep 300; }') });
    layouts.push(made);
    const up = startWarren(made.args('up'));
    running.push(up);
    await waitDuring(up, 'the task running, its card in progress', () => started(made, 'again') && cardValue(made, 'again', 'status') === 'in_progress');
    up.child.kill('SIGKILL');
    await up.done;
    await waitFor('the killed supervisor’s agents to end', () => agentProcessesOf(made).length === 0, 30_000);

    setStatus(made, 'again', 'ready');
    const rerun = await warren(made.args('run', '--until-idle'));
    expect(rerun.code, rerun.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'again', 'status')).toBe('done');
    expect(parse(cardValue(made, 'again', 'result')!)).toBe('second-run');
  }, 300_000);
});

describe('a duplicate id added while a task runs', () => {
  it('is held as the duplicate, whatever its file name; the running card keeps its task and result (#35)', async () => {
    const made = makeTestLayout({ dup: shellTask('dup', waitForGo('original-command')) });
    layouts.push(made);
    const run = startWarren(made.args('run', '--until-idle'));
    running.push(run);
    await waitDuring(run, 'the task running, its card in progress', () => started(made, 'dup') && cardValue(made, 'dup', 'status') === 'in_progress');

    const impostor = '---\nid: dup\ntitle: Impostor\nstatus: ready\ncapabilities: [shell]\ncommand: echo IMPOSTOR\n---\n';
    const impostorPath = join(made.dir, 'kanban', 'tasks', 'aaa.md');
    writeAtomically(impostorPath, impostor);
    await waitDuring(run, 'the newcomer to be held', () => audit(made, '--action', 'task.held').some((r) => r.object === 'file:tasks/aaa.md'));
    letFinish(made, 'dup');
    const end = await ended(run);

    expect(end.code).toBe(1);
    expect(end.stdout).toContain("held    kanban/tasks/aaa.md:2: id 'dup' is already used by kanban/tasks/dup.md");
    expect(cardValue(made, 'dup', 'status')).toBe('done');
    expect(cardValue(made, 'dup', 'result')).toBe('original-command');
    expect(readFileSync(impostorPath, 'utf8')).toBe(impostor);
    expect(audit(made, '--action', 'task.assign')).toHaveLength(1);
  }, 300_000);
});

describe('cards of fast tasks', () => {
  it('name their assignee and start even when the in-progress write was folded into the last one (#41)', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `fast-${i + 1}`);
    const made = makeTestLayout(Object.fromEntries(ids.map((id) => [id, shellTask(id, `echo ${id}`)])));
    layouts.push(made);
    const run = await warren(made.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const assigned = new Map(audit(made, '--action', 'task.assign').map((r) => [r.object.slice('task:'.length), r.details.agent as string]));
    for (const id of ids) {
      expect(cardValue(made, id, 'status')).toBe('done');
      expect(cardValue(made, id, 'assignee'), id).toBe(assigned.get(id));
      expect(Date.parse(cardValue(made, id, 'started') ?? ''), id).not.toBeNaN();
    }
  }, 300_000);
});

describe('a card the board does not let Warren show in progress', () => {
  it('still names its assignee and start once the task ends (#41, the fold made certain)', async () => {
    const made = makeTestLayout({ quick: shellTask('quick', 'echo quick') });
    layouts.push(made);
    // ready -> in_progress is not allowed: the in-progress write is refused, the last write folds it.
    appendFileSync(join(made.dir, 'kanban', 'board.yaml'), 'transitions:\n  backlog: [ready]\n  ready: [done, failed]\n  in_progress: [done, failed]\n');
    const run = await warren(made.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const agent = audit(made, '--action', 'task.assign')[0]!.details.agent as string;
    expect(cardValue(made, 'quick', 'status')).toBe('done');
    expect(cardValue(made, 'quick', 'assignee')).toBe(agent);
    expect(Date.parse(cardValue(made, 'quick', 'started') ?? '')).not.toBeNaN();
  }, 300_000);
});

/**
 * A JSON-config (Promethean) board in a test layout, replacing its Warren `board.yaml`, with one
 * task `p1` for a template `runner` whose program is `/bin/true`.
 */
function jsonConfigLayout(rules: readonly { from: string[]; to: string[] }[]): TestLayout {
  const made = makeTestLayout({}, { copyAgents: true });
  layouts.push(made);
  const board = join(made.dir, 'kanban');
  rmSync(join(board, 'board.yaml'));
  writeFileSync(
    join(board, 'board.kanban.json'),
    JSON.stringify({
      tasksDir: 'tasks',
      statusValues: ['incoming', 'todo', 'in_progress', 'review', 'done', 'rejected'],
      priorityValues: ['P0', 'P1', 'P2', 'P3'],
      transitionRules: { enabled: true, rules },
    }),
  );
  writeFileSync(join(board, 'tasks', 'p1.md'), '---\nuuid: "p1"\ntitle: "Review path"\nstatus: "todo"\npriority: "P2"\ncapabilities: [runner]\n---\nBody.\n');
  writeFileSync(join(made.dir, 'agents', 'runner.yaml'), 'name: runner\ncapabilities: [runner]\nruntime: { kind: exec, command: [/bin/true], timeout: 1m }\nmaxInstances: 1\n');
  appendFileSync(join(made.dir, 'policies', 'policy.csv'), '\ng, template:runner, role:worker\n');
  return made;
}

describe('boards whose transition rules forbid in_progress -> done', () => {
  it('walk a finished card along the allowed path to done, one audited write per step, keeping the file’s quoting', async () => {
    const made = jsonConfigLayout([
      { from: ['todo'], to: ['in_progress'] },
      { from: ['in_progress'], to: ['review', 'todo'] },
      { from: ['review'], to: ['done', 'in_progress'] },
    ]);
    const run = await warren(made.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'p1', 'status')).toBe('"done"');
    const writes = audit(made, '--action', 'board.write').filter((r) => r.object === 'task:p1');
    expect(writes.map((r) => r.details.status)).toEqual(['in_progress', 'review', 'done']);
  }, 300_000);

  it('leave the card where no allowed path leads on, saying on the card and in the summary where it stopped and why', async () => {
    const made = jsonConfigLayout([
      { from: ['todo'], to: ['in_progress'] },
      { from: ['in_progress'], to: ['review'] },
      { from: ['review'], to: ['in_progress'] },
    ]);
    const run = await warren(made.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(cardValue(made, 'p1', 'status')).toBe('"in_progress"');
    const why = 'stopped in in_progress: no transition rule allows in_progress -> done (allowed from in_progress: review)';
    expect(cardValue(made, 'p1', 'result')).toContain(why);
    expect(run.stdout).toContain(`board   p1: succeeded, but the card ${why}`);
    expect(audit(made, '--action', 'board.stopped').map((r) => r.details.reason)).toEqual([why]);
  }, 300_000);
});
