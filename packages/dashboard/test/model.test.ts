import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  SampleBuffer,
  agentFacets,
  describeExit,
  changesBoard,
  filterAgents,
  formatBytes,
  formatDuration,
  formatInZone,
  formatRelative,
  formatTokens,
  formatUsd,
  graphModel,
  topicNodeId,
  groupCards,
  movedCards,
  parseRoute,
  recordUsage,
  routeHash,
  sortSchedules,
  sparkPath,
  throttle,
  timeline,
  transcript,
  type AgentUsage,
} from '../src/app/model.js';
import type { AgentItem, AuditRecord, BoardColumn, Card, ExecutionView, ScheduleItem } from '../src/app/types.js';

const card = (id: string, column: string, extra: Partial<Card> = {}): Card => ({
  id,
  title: `Task ${id}`,
  column,
  priority: null,
  capabilities: [],
  dependsOn: [],
  state: null,
  agent: null,
  queuePosition: null,
  queueReason: null,
  path: `${id}.md`,
  ...extra,
});
const column = (name: string, wip: number | null, count: number, over = false): BoardColumn => ({ name, wip, count, over });

describe('groupCards', () => {
  it('puts cards in the board’s columns in column order, urgent first, then by queue position and id', () => {
    const columns = groupCards({
      columns: [column('Backlog', null, 3), column('Doing', 2, 1), column('Done', null, 0)],
      cards: [
        card('T-3', 'Backlog', { priority: 'low' }),
        card('T-2', 'Backlog', { queuePosition: 2 }),
        card('T-1', 'Backlog', { queuePosition: 1 }),
        card('T-9', 'Doing', { priority: 'urgent' }),
        card('T-4', 'Backlog', { priority: 'urgent' }),
      ],
    });
    expect(columns.map((c) => c.name)).toEqual(['Backlog', 'Doing', 'Done']);
    expect(columns[0]?.cards.map((c) => c.id)).toEqual(['T-4', 'T-3', 'T-1', 'T-2']);
    expect(columns[1]?.cards.map((c) => c.id)).toEqual(['T-9']);
    expect(columns[2]?.cards).toEqual([]);
  });

  it('keeps the server’s count and over-limit mark and gives an unlisted column a place of its own', () => {
    const columns = groupCards({
      columns: [column('Doing', 1, 2, true)],
      cards: [card('A', 'Doing'), card('B', 'Doing'), card('C', 'Archive')],
    });
    expect(columns).toEqual([
      expect.objectContaining({ key: 'Doing', name: 'Doing', wip: 1, count: 2, over: true }),
      expect.objectContaining({ key: 'Archive', name: 'Archive', wip: null, count: 1, over: false }),
    ]);
    expect(columns[1]?.cards.map((c) => c.id)).toEqual(['C']);
  });

  it('matches cards to columns by id when the board gives ids, and shows the names', () => {
    const columns = groupCards({
      columns: [{ id: 'in_progress', name: 'In progress', wip: 4, count: 1, over: false }, { id: 'done', name: 'Done', wip: null, count: 1, over: false }],
      cards: [card('A', 'in_progress'), card('B', 'done')],
    });
    expect(columns.map((c) => [c.key, c.name, c.cards.map((x) => x.id)])).toEqual([
      ['in_progress', 'In progress', ['A']],
      ['done', 'Done', ['B']],
    ]);
  });
});

describe('changesBoard', () => {
  it('refetches on task and board events and never on policy decisions', () => {
    expect(changesBoard('task.assign')).toBe(true);
    expect(changesBoard('board.write')).toBe(true);
    expect(changesBoard('command.task.retry')).toBe(true);
    expect(changesBoard('policy.decide')).toBe(false);
    expect(changesBoard('agent.start')).toBe(false);
  });
});

describe('throttle', () => {
  afterEach(() => vi.useRealTimers());

  it('runs the first call at once and merges the calls inside the interval into one at its end', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const t = throttle(fn, 1000);
    t();
    expect(fn).toHaveBeenCalledTimes(1);
    t();
    t();
    t();
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(999);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(5000);
    expect(fn).toHaveBeenCalledTimes(2);
    t.cancel();
  });

  it('drops a pending call on cancel', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const t = throttle(fn, 1000);
    t();
    t();
    t.cancel();
    vi.advanceTimersByTime(2000);
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

const execution = (attempt: number, extra: Partial<ExecutionView> = {}): ExecutionView => ({
  taskId: 'T-1',
  attempt,
  agent: 'shell-1',
  template: 'shell',
  state: 'finished',
  outcome: 'succeeded',
  exitCode: 0,
  summary: null,
  outputs: [],
  readySinceMs: 1000,
  assignedMs: 1500,
  ackedMs: 1700,
  finishedMs: 4700,
  waitingMs: 500,
  startingMs: 200,
  runningMs: 3000,
  ...extra,
});

describe('timeline', () => {
  it('makes queued, assigned and running phases with durations, oldest attempt first', () => {
    const rows = timeline([execution(2, { readySinceMs: 10_000, assignedMs: 10_100, ackedMs: null, finishedMs: null, outcome: null, state: 'published' }), execution(1, { outcome: 'failed', exitCode: 3 })], 12_000);
    expect(rows.map((r) => r.attempt)).toEqual([1, 2]);
    expect(rows[0]).toMatchObject({
      outcome: 'failed',
      exitCode: 3,
      finishedMs: 4700,
      totalMs: 3700,
      phases: [
        { name: 'queued', startMs: 1000, endMs: 1500, durationMs: 500 },
        { name: 'assigned', startMs: 1500, endMs: 1700, durationMs: 200 },
        { name: 'running', startMs: 1700, endMs: 4700, durationMs: 3000 },
      ],
    });
    // An open attempt: its phase runs to now.
    expect(rows[1]).toMatchObject({
      outcome: 'open',
      finishedMs: null,
      totalMs: 2000,
      phases: [
        { name: 'queued', durationMs: 100 },
        { name: 'assigned', startMs: 10_100, endMs: null, durationMs: 1900 },
      ],
    });
  });

  it('counts running from assignment when no acknowledgement was recorded and leaves out an unknown queue time', () => {
    const [row] = timeline([execution(1, { readySinceMs: null, ackedMs: null })], 99_999);
    expect(row?.phases).toEqual([{ name: 'running', startMs: 1500, endMs: 4700, durationMs: 3200 }]);
    expect(row?.totalMs).toBe(3200);
  });
});

const agent = (name: string, extra: Partial<AgentItem> = {}): AgentItem => ({
  name,
  template: 'shell',
  uid: 61000,
  state: 'running',
  pid: 10,
  startedMs: 0,
  stoppedMs: null,
  lastExit: null,
  tasksDone: 0,
  capabilities: ['shell'],
  wip: 1,
  live: null,
  ...extra,
});
const live = (cpuMs: number | null, memoryBytes: number | null): AgentItem['live'] => ({
  status: 'idle',
  load: 0,
  lastHeartbeatMs: null,
  uptimeMs: 1000,
  cpuMs,
  memoryBytes,
  memoryLimitBytes: null,
  pids: 1,
});

describe('fleet filters', () => {
  const agents = [
    agent('py-1', { template: 'python', capabilities: ['python', 'shell'], state: 'sleeping' }),
    agent('shell-2', { live: { ...live(0, 0)!, status: 'busy' } }),
    agent('shell-1'),
  ];

  it('lists the distinct templates, states (rows and live) and capabilities', () => {
    expect(agentFacets(agents)).toEqual({ templates: ['python', 'shell'], states: ['busy', 'running', 'sleeping'], capabilities: ['python', 'shell'] });
  });

  it('keeps the agents matching every field, sorted by name', () => {
    expect(filterAgents(agents, { template: '', state: '', capability: '' }).map((a) => a.name)).toEqual(['py-1', 'shell-1', 'shell-2']);
    expect(filterAgents(agents, { template: 'shell', state: '', capability: '' }).map((a) => a.name)).toEqual(['shell-1', 'shell-2']);
    expect(filterAgents(agents, { template: '', state: 'busy', capability: '' }).map((a) => a.name)).toEqual(['shell-2']);
    expect(filterAgents(agents, { template: '', state: '', capability: 'python' }).map((a) => a.name)).toEqual(['py-1']);
    expect(filterAgents(agents, { template: 'python', state: 'running', capability: '' })).toEqual([]);
  });
});

describe('describeExit', () => {
  it('says how an agent last ended', () => {
    expect(describeExit(null)).toBe('–');
    expect(describeExit('killed by SIGKILL (watchdog)')).toBe('killed by SIGKILL (watchdog)');
    expect(describeExit({ code: 1, signal: null, reason: 'unexpected', atMs: 1 })).toBe('exit 1 (unexpected)');
    expect(describeExit({ code: null, signal: 'SIGKILL', reason: null, atMs: 1 })).toBe('signal SIGKILL');
  });
});

describe('sparkline buffers', () => {
  it('keep the latest samples only', () => {
    const b = new SampleBuffer(3);
    for (const v of [1, 2, 3, 4, 5]) b.push(v);
    expect(b.values()).toEqual([3, 4, 5]);
    expect(b.length).toBe(3);
    expect(() => new SampleBuffer(0)).toThrow(RangeError);
  });

  it('turn cumulative CPU time into a share of a core, keep memory, forget agents that left', () => {
    const history = new Map<string, AgentUsage>();
    recordUsage(history, [agent('a', { live: live(1000, 100) }), agent('b')], 10_000, 4);
    expect(history.has('b')).toBe(false); // not running: no samples
    expect(history.get('a')?.cpu.values()).toEqual([]); // the first reading primes the rate
    recordUsage(history, [agent('a', { live: live(1500, 200) })], 11_000, 4);
    recordUsage(history, [agent('a', { live: live(3500, 300) })], 12_000, 4);
    expect(history.get('a')?.cpu.values()).toEqual([0.5, 2]);
    expect(history.get('a')?.memory.values()).toEqual([100, 200, 300]);
    // Restarted: the counter went back; it primes again instead of drawing a negative rate.
    recordUsage(history, [agent('a', { live: live(10, 300) })], 13_000, 4);
    expect(history.get('a')?.cpu.values()).toEqual([0.5, 2]);
    recordUsage(history, [], 14_000, 4);
    expect(history.size).toBe(0);
  });

  it('draw as an SVG path scaled into the box', () => {
    expect(sparkPath([], 100, 20)).toBe('');
    expect(sparkPath([0, 5, 10], 100, 20)).toBe('M0.0,20.0L50.0,10.0L100.0,0.0');
    expect(sparkPath([5], 100, 20, 10)).toBe('M0,10.0L100,10.0');
    expect(sparkPath([0, 20], 100, 20, 10)).toBe('M0.0,20.0L100.0,0.0'); // clamped to max
  });
});

describe('graphModel', () => {
  it('merges edges of one direction, totals each agent and sorts links by count', () => {
    const g = graphModel([
      { from: 'a', to: 'b', count: 2, denied: 0 },
      { from: 'b', to: 'a', count: 5, denied: 1 },
      { from: 'a', to: 'b', count: 3, denied: 1 },
      { from: 'c', to: 'c', count: 1, denied: 0 },
    ]);
    expect(g.links).toEqual([
      { source: 'a', target: 'b', count: 5, denied: 1, bytes: 0, lastMs: null },
      { source: 'b', target: 'a', count: 5, denied: 1, bytes: 0, lastMs: null },
      { source: 'c', target: 'c', count: 1, denied: 0, bytes: 0, lastMs: null },
    ]);
    expect(g.nodes).toEqual([
      { id: 'a', kind: 'agent', label: 'a', sent: 5, received: 5 },
      { id: 'b', kind: 'agent', label: 'b', sent: 5, received: 5 },
      { id: 'c', kind: 'agent', label: 'c', sent: 1, received: 1 },
    ]);
    expect(graphModel([])).toEqual({ nodes: [], links: [] });
  });

  it('draws a topic edge to the topic node, apart from an agent of the same name, with bytes and the newest time', () => {
    const g = graphModel([
      { from: 'a', to: '*', topic: 'builds', count: 4, denied: 1, bytes: 300, firstMs: 10, lastMs: 40 },
      { from: 'b', to: '*', topic: 'builds', count: 1, denied: 0, bytes: 20, firstMs: 50, lastMs: 50 },
      { from: 'a', to: 'builds', topic: '', count: 2, denied: 0, bytes: 9, firstMs: 5, lastMs: 6 },
    ]);
    expect(g.nodes).toEqual([
      { id: 'a', kind: 'agent', label: 'a', sent: 6, received: 0 },
      { id: 'b', kind: 'agent', label: 'b', sent: 1, received: 0 },
      { id: 'builds', kind: 'agent', label: 'builds', sent: 0, received: 2 },
      { id: topicNodeId('builds'), kind: 'topic', label: 'builds', sent: 0, received: 5 },
    ]);
    expect(g.links).toEqual([
      { source: 'a', target: 'topic:builds', count: 4, denied: 1, bytes: 300, lastMs: 40 },
      { source: 'a', target: 'builds', count: 2, denied: 0, bytes: 9, lastMs: 6 },
      { source: 'b', target: 'topic:builds', count: 1, denied: 0, bytes: 20, lastMs: 50 },
    ]);
  });
});

describe('routes and formats', () => {
  it('parse the fragment and build it back', () => {
    expect(parseRoute('')).toEqual({ view: 'fleet' });
    expect(parseRoute('#/board')).toEqual({ view: 'board' });
    expect(parseRoute('#/tasks/T%2F1')).toEqual({ view: 'task', id: 'T/1' });
    expect(parseRoute('#/agents/shell-1')).toEqual({ view: 'agent', name: 'shell-1' });
    expect(parseRoute('#/agents/%E0%A4%A')).toEqual({ view: 'agent', name: '%E0%A4%A' });
    expect(parseRoute('#/nowhere')).toEqual({ view: 'fleet' });
    expect(routeHash({ view: 'task', id: 'T/1' })).toBe('#/tasks/T%2F1');
    expect(routeHash({ view: 'audit' })).toBe('#/audit');
    expect(parseRoute('#/cost')).toEqual({ view: 'cost' });
    expect(routeHash({ view: 'cost' })).toBe('#/cost');
    expect(parseRoute('#/schedules')).toEqual({ view: 'schedules' });
    expect(routeHash({ view: 'schedules' })).toBe('#/schedules');
  });

  it('format dollars and tokens for people', () => {
    expect([0, 0.0042, 0.00001, 0.039, 0.04, 0.1, 0.75, 3.25, 12.3, 1234.4, null, Number.NaN].map(formatUsd)).toEqual([
      '$0', '$0.0042', '$0.00001', '$0.039', '$0.04', '$0.10', '$0.75', '$3.25', '$12.30', '$1,234', '–', '–',
    ]);
    expect([0, 950, 12_345, 4_500_000, undefined].map(formatTokens)).toEqual(['0', '950', '12.3 k', '4.5 M', '–']);
  });

  it('format durations and sizes for people', () => {
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_345)).toBe('12.3 s');
    expect(formatDuration(245_000)).toBe('4 m 05 s');
    expect(formatDuration(7_800_000)).toBe('2 h 10 m');
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe('3 d 4 h');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12 * 1024 * 1024)).toBe('12.0 MiB');
  });
});

describe('movedCards', () => {
  it('marks cards that changed column or state since the last fetch, and new cards', () => {
    const first = movedCards(undefined, [card('A', 'Ready', { state: 'ready' }), card('B', 'Doing', { state: 'running' })]);
    expect([...first.moved]).toEqual([]);
    const second = movedCards(first.positions, [card('A', 'Doing', { state: 'running' }), card('B', 'Doing', { state: 'succeeded' }), card('C', 'Backlog')]);
    expect([...second.moved].sort()).toEqual(['A', 'B', 'C']);
    const third = movedCards(second.positions, [card('A', 'Doing', { state: 'running' })]);
    expect([...third.moved]).toEqual([]);
  });
});

describe('transcript', () => {
  const progress = (seq: number, details: Record<string, unknown>, action = 'task.progress'): AuditRecord => ({
    seq,
    timeMs: 1_000 + seq,
    actor: 'agent:coder-1',
    action,
    object: 'task:t1',
    decision: null,
    details,
  });

  it('maps each agent event of the progress rows, in seq order, keeping what it does not know as raw', () => {
    const rows = [
      progress(5, { attempt: 1, event: { kind: 'tool_result', id: 'c1', output: 'hello.txt\n', isError: false } }),
      progress(2, { attempt: 1, event: { kind: 'session', sessionId: 's-1', model: 'claude-x' } }),
      progress(3, { attempt: 1, event: { kind: 'text', text: 'I will list the files.' } }),
      progress(4, { attempt: 1, event: { kind: 'tool_call', id: 'c1', name: 'Bash', input: { command: 'ls' } } }),
      progress(6, { attempt: 1, event: { kind: 'usage', inputTokens: 1200, outputTokens: 40, costUsd: 0.01 } }),
      progress(7, { attempt: 1, event: { kind: 'error', message: 'rate limited' } }),
      progress(8, { attempt: 1, event: { kind: 'raw', source: 'codex', line: { type: 'turn.mystery' } } }),
      progress(9, { attempt: 1, event: { kind: 'something_new', x: 1 } }),
      progress(10, { attempt: 1, event: { kind: 'text' } }),
      progress(11, { attempt: 2, message: 'compiling', percent: 40 }),
      progress(12, { attempt: 2, event: { kind: 'final', text: 'Done: hello.txt', isError: false } }),
      progress(13, { reason: 'not progress' }, 'task.assign'),
    ];
    const entries = transcript(rows);
    expect(entries.map((e) => `${e.attempt}:${e.kind}`)).toEqual([
      '1:session', '1:text', '1:tool_call', '1:tool_result', '1:usage', '1:error', '1:raw', '1:raw', '1:raw', '2:progress', '2:final',
    ]);
    expect(entries[0]).toEqual({ seq: 2, timeMs: 1_002, attempt: 1, kind: 'session', sessionId: 's-1', model: 'claude-x' });
    expect(entries[2]).toMatchObject({ kind: 'tool_call', name: 'Bash', input: '{\n  "command": "ls"\n}' });
    expect(entries[3]).toMatchObject({ kind: 'tool_result', output: 'hello.txt\n', isError: false });
    expect(entries[4]).toMatchObject({ kind: 'usage', inputTokens: 1200, outputTokens: 40, costUsd: 0.01, model: null });
    expect(entries[6]).toMatchObject({ kind: 'raw', source: 'codex', line: '{\n  "type": "turn.mystery"\n}' });
    expect(entries[7]).toMatchObject({ kind: 'raw', source: 'something_new' });
    expect(entries[8]).toMatchObject({ kind: 'raw', source: 'text' });
    expect(entries[9]).toMatchObject({ kind: 'progress', message: 'compiling', percent: 40 });
    expect(entries[10]).toMatchObject({ kind: 'final', text: 'Done: hello.txt', isError: false });
  });
});

describe('schedules', () => {
  const schedule = (name: string, nextFireMs: number | null, due = false): ScheduleItem => ({
    name, cron: '0 9 * * *', timezone: null, lastFireMs: null, lastTaskId: null, nextFireMs, due,
  });

  it('lists due schedules first, then the soonest next fire, one that fires no more last', () => {
    const sorted = sortSchedules([schedule('later', 3000), schedule('never', null), schedule('soon', 1000), schedule('late', 5000, true), schedule('also-soon', 1000)]);
    expect(sorted.map((s) => s.name)).toEqual(['late', 'also-soon', 'soon', 'later', 'never']);
  });

  it('says how far a fire time is from now', () => {
    const now = Date.parse('2026-03-08T12:00:00Z');
    expect(formatRelative(now + 245_000, now)).toBe('in 4 m 05 s');
    expect(formatRelative(now - 12_345, now)).toBe('12.3 s ago');
    expect(formatRelative(now + 400, now)).toBe('now');
    expect(formatRelative(null, now)).toBe('–');
  });

  it("writes a fire time on the schedule's own clock, across a DST change", () => {
    expect(formatInZone(Date.parse('2026-03-07T14:00:00Z'), 'America/New_York')).toBe('2026-03-07 09:00:00 America/New_York');
    expect(formatInZone(Date.parse('2026-03-08T13:00:00Z'), 'America/New_York')).toBe('2026-03-08 09:00:00 America/New_York');
    expect(formatInZone(Date.parse('2026-03-08T00:30:05Z'), null)).toBe('2026-03-08 00:30:05 UTC');
    expect(formatInZone(Date.parse('2026-03-08T00:30:05Z'), 'Mars/Olympus_Mons')).toBe('2026-03-08 00:30:05 UTC');
    expect(formatInZone(null, 'UTC')).toBe('–');
  });
});
