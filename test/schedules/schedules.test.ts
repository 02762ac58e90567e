/**
 * Board schedules: the rules of cron and time zones on a fixed clock, the schedules file's checks,
 * and end to end with the built CLI: a schedule every 2 seconds whose cards Warren runs, a
 * schedule across a restart (one card for the fire times missed while Warren was down), a card
 * written before a crash found rather than written twice, and a malformed schedule reported while
 * the others run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadBoard, type Task } from '@warren/kanban';
import { describe, expect, it } from 'vitest';
import { compileCron, isCronProblem, type CronSchedule } from '../../services/supervisor/src/schedules/cron.js';
import { isScheduledCard, scheduleMarker } from '../../services/supervisor/src/schedules/board-schedules.js';
import { parseScheduleFile } from '../../services/supervisor/src/schedules/schedule-file.js';
import { cleanUpAfterEach, cli, makeTestLayout, requireMachine, startWarren, waitFor, warrenSync, type AuditRow, type CliProcess, type TestLayout } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

const ms = (iso: string) => Date.parse(iso);
const compiled = (cron: string, timezone?: string): CronSchedule => {
  const made = compileCron(cron, timezone);
  if (isCronProblem(made)) throw new Error(made.reason);
  return made;
};

describe('cron expressions in a time zone (fixed clock)', () => {
  it("runs '0 9 * * *' in America/New_York at 9:00 local time across both DST changes", () => {
    const nine = compiled('0 9 * * *', 'America/New_York');
    // EST (UTC-5) until 2026-03-08 02:00 local, EDT (UTC-4) after; EST again from 2026-11-01 02:00 local.
    expect(nine.latestFireMs(ms('2026-03-07T20:00:00Z'))).toBe(ms('2026-03-07T14:00:00Z'));
    expect(nine.nextFireMs(ms('2026-03-07T14:00:00Z'))).toBe(ms('2026-03-08T13:00:00Z'));
    expect(nine.latestFireMs(ms('2026-03-08T13:30:00Z'))).toBe(ms('2026-03-08T13:00:00Z'));
    // Before 9:00 EDT on the change's day, the latest fire is the day before's, at 9:00 EST.
    expect(nine.latestFireMs(ms('2026-03-08T12:59:59Z'))).toBe(ms('2026-03-07T14:00:00Z'));
    expect(nine.nextFireMs(ms('2026-10-31T13:00:00Z'))).toBe(ms('2026-11-01T14:00:00Z'));
    expect(nine.latestFireMs(ms('2026-11-01T13:30:00Z'))).toBe(ms('2026-10-31T13:00:00Z'));
    // A fire time exactly now is the latest; the next is strictly later.
    expect(nine.latestFireMs(ms('2026-11-01T14:00:00Z'))).toBe(ms('2026-11-01T14:00:00Z'));
    expect(nine.nextFireMs(ms('2026-11-01T14:00:00Z'))).toBe(ms('2026-11-02T14:00:00Z'));
  });

  it('takes seconds as a sixth field, UTC when no time zone is given, and refuses bad expressions and zones', () => {
    const every2s = compiled('*/2 * * * * *');
    expect(every2s.latestFireMs(ms('2026-01-01T00:00:03.500Z'))).toBe(ms('2026-01-01T00:00:02Z'));
    expect(every2s.nextFireMs(ms('2026-01-01T00:00:03.500Z'))).toBe(ms('2026-01-01T00:00:04Z'));
    expect(compiled('30 6 * * *').latestFireMs(ms('2026-07-01T07:00:00Z'))).toBe(ms('2026-07-01T06:30:00Z'));
    expect(compileCron('0 9 * *', undefined)).toMatchObject({ field: 'cron' });
    expect(compileCron('61 * * * *', undefined)).toMatchObject({ field: 'cron', reason: expect.stringContaining('minute') });
    expect(compileCron('0 9 * * *', 'Mars/Olympus_Mons')).toMatchObject({ field: 'timezone' });
  });
});

describe('the schedules file', () => {
  it('names file, line, schedule and field of each bad schedule and keeps the good ones', () => {
    const text = [
      'schedules:',
      '  - name: good',
      "    cron: '0 9 * * *'",
      '    timezone: Europe/Paris',
      '    task: { title: Good one }',
      '  - name: bad-cron',
      "    cron: '0 25 * * *'",
      '    task: { title: Bad cron }',
      '  - name: bad-zone',
      "    cron: '0 9 * * *'",
      '    timezone: Nowhere/City',
      '    task: { title: Bad zone }',
      '  - name: no-title',
      "    cron: '0 9 * * *'",
      '    task: { body: nothing }',
      '  - name: good',
      "    cron: '0 10 * * *'",
      '    task: { title: Same name }',
      '  - name: extra',
      "    cron: '0 9 * * *'",
      '    colour: blue',
      '    task: { title: Extra }',
      '',
    ].join('\n');
    const file = parseScheduleFile(text, 'kanban/schedules.yaml');
    expect(file.schedules.map((s) => s.name)).toEqual(['good']);
    expect(file.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^kanban\/schedules\.yaml:7: schedule 'bad-cron': 'cron' .*hour/),
      expect.stringMatching(/^kanban\/schedules\.yaml:11: schedule 'bad-zone': 'timezone' 'Nowhere\/City' is not an IANA time zone/),
      expect.stringMatching(/^kanban\/schedules\.yaml:15: schedule 'no-title': 'task.title' /),
      expect.stringMatching(/^kanban\/schedules\.yaml:16: schedule 'good': 'name' is the name of an earlier schedule/),
      expect.stringMatching(/^kanban\/schedules\.yaml:21: schedule 'extra': 'colour' is not a schedule field/),
    ]);
    expect(parseScheduleFile('schedules: [\n', 'x.yaml')).toMatchObject({ unreadable: true, problems: [{ line: expect.any(Number), message: expect.stringContaining('x.yaml') }] });
  });

  it('finds a card by its frontmatter or by the marker in its body', () => {
    const fireMs = ms('2026-01-01T00:00:00Z');
    expect(isScheduledCard({ fields: { schedule: 'n', schedule_fire: '2026-01-01T00:00:00.000Z' }, body: '' }, 'n', fireMs)).toBe(true);
    expect(isScheduledCard({ fields: {}, body: `text\n${scheduleMarker('n', fireMs)}\n` }, 'n', fireMs)).toBe(true);
    expect(isScheduledCard({ fields: {}, body: scheduleMarker('n', fireMs + 1000) }, 'n', fireMs)).toBe(false);
    expect(isScheduledCard({ fields: { schedule: 'other', schedule_fire: '2026-01-01T00:00:00.000Z' }, body: '' }, 'n', fireMs)).toBe(false);
  });
});

/** The cards schedule `name` wrote on the layout's board, by fire time. */
async function scheduledCards(layout: TestLayout, name: string): Promise<{ task: Task; fireMs: number }[]> {
  const board = await loadBoard(join(layout.dir, 'kanban'));
  return board.tasks
    .filter((t) => t.fields.schedule === name)
    .map((task) => ({ task, fireMs: Date.parse(String(task.fields.schedule_fire)) }))
    .sort((a, b) => a.fireMs - b.fireMs);
}

/** Reads `warren audit --json` rows of `action`. */
function audit(layout: TestLayout, action: string): AuditRow[] {
  return JSON.parse(warrenSync(['audit', '--json', '--action', action, ...layout.args()])) as AuditRow[];
}

/** A schedules file of one shell schedule every 2 seconds, and the `extra` lines after it. */
function every2s(name: string, extra: string[] = []): string {
  return [
    'schedules:',
    `  - name: ${name}`,
    "    cron: '*/2 * * * * *'",
    '    task:',
    '      title: Heartbeat',
    '      body: Counts the heartbeat.',
    '      capabilities: [shell]',
    "      command: 'echo beat'",
    '      fields: { team: ops }',
    ...extra,
    '',
  ].join('\n');
}

async function stop(up: CliProcess): Promise<void> {
  up.child.kill('SIGTERM');
  const result = await up.done;
  expect(result.code, result.stderr.slice(-3000)).toBe(0);
}

describe('schedules with warren up', () => {
  it('writes a card at each fire time of a schedule every 2 seconds, which Warren runs; a malformed schedule is reported and the others run', async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    const schedules = join(layout.dir, 'kanban', 'schedules.yaml');
    writeFileSync(
      schedules,
      every2s('beat', [
        '  - name: broken',
        "    cron: '*/2 * * * * * * *'",
        '    task: { title: Never, capabilities: [shell], command: "true" }',
        '  - name: zoned',
        "    cron: '0 9 * * *'",
        '    timezone: Atlantis/Capital',
        '    task: { title: Never either }',
        '  - name: odd-priority',
        "    cron: '*/2 * * * * *'",
        '    task: { title: Never at all, priority: sky-high }',
      ]),
    );
    const up = startWarren(layout.args('up', '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    running.push(up);
    const doneCards = async () => (await scheduledCards(layout, 'beat')).filter((c) => c.task.status === 'done');
    const deadline = Date.now() + 120_000;
    while ((await doneCards()).length < 3) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for three done heartbeat cards\n${up.stderr().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const cards = await scheduledCards(layout, 'beat');
    const fires = cards.map((c) => c.fireMs);
    expect(new Set(fires).size).toBe(fires.length);
    for (const fire of fires) expect(fire % 2000).toBe(0);
    for (const { task } of cards) {
      expect(task.title).toBe('Heartbeat');
      expect(task.capabilities).toEqual(['shell']);
      expect(task.fields.team).toBe('ops');
      expect(task.body).toContain('Counts the heartbeat.');
    }
    // Each card is audited once, with its fire time and task id.
    await waitFor('the schedule.fired rows', () => audit(layout, 'schedule.fired').length >= cards.length, 60_000, up);
    const fired = audit(layout, 'schedule.fired');
    for (const { task, fireMs } of cards) {
      expect(fired.filter((r) => r.details.taskId === task.id)).toEqual([
        expect.objectContaining({ object: 'schedule:beat', details: expect.objectContaining({ schedule: 'beat', fireMs, fireTime: new Date(fireMs).toISOString(), found: false }) }),
      ]);
    }
    // The malformed schedules: one input.rejected each, with file, schedule and field.
    // A card the board refuses (a priority it has not) is reported once, and its schedule stops.
    const rejected = audit(layout, 'input.rejected').filter((r) => r.details.kind === 'schedule');
    expect(rejected.map((r) => r.details.message)).toEqual([
      expect.stringMatching(/^schedules\.yaml:11: schedule 'broken': 'cron' /),
      expect.stringMatching(/^schedules\.yaml:15: schedule 'zoned': 'timezone' 'Atlantis\/Capital' is not an IANA time zone/),
      expect.stringMatching(/^schedules\.yaml:17: schedule 'odd-priority': the board refuses its card: 'priority' must be one of low, normal, high, urgent/),
    ]);
    expect((await loadBoard(join(layout.dir, 'kanban'))).tasks.filter((t) => t.title.startsWith('Never'))).toEqual([]);

    // `warren schedule list` shows the last and next fire.
    const listed = spawnSync(process.execPath, [cli, 'schedule', 'list', '--json', ...layout.args()], { encoding: 'utf8' });
    expect(listed.status, 'the exit code names the rejected schedules').toBe(1);
    expect(listed.stderr).toContain("schedule 'broken': 'cron' '*/2 * * * * * * *' has 8 fields");
    const list = JSON.parse(listed.stdout) as { schedules: { name: string; cron: string; lastFireMs: number; lastTaskId: string; nextFireMs: number }[]; problems: { schedule: string; field: string }[] };
    expect(list.problems).toEqual([expect.objectContaining({ schedule: 'broken', field: 'cron' }), expect.objectContaining({ schedule: 'zoned', field: 'timezone' })]);
    const beat = list.schedules.find((s) => s.name === 'beat')!;
    expect(beat.lastFireMs).toBeGreaterThanOrEqual(fires.at(-1)!);
    expect(beat.nextFireMs).toBeGreaterThan(beat.lastFireMs);
    expect(list.schedules.map((s) => s.name)).toEqual(['beat', 'odd-priority']);
    // The API serves the same listing.
    await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()), 60_000, up);
    const link = new URL(/Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!);
    const served = (await fetch(`${link.origin}/api/v1/schedules`, { headers: { authorization: `Bearer ${link.searchParams.get('token')!}` } }).then((r) => r.json())) as typeof list;
    expect(served.schedules.find((s) => s.name === 'beat')).toMatchObject({ cron: beat.cron, lastTaskId: expect.any(String) });
    expect(served.problems.map((p) => p.schedule)).toEqual(['broken', 'zoned']);

    // The file is read again when it changes: a new schedule starts, the broken ones are gone.
    const changedMs = Date.now();
    writeFileSync(schedules, every2s('beat', ['  - name: second', "    cron: '*/2 * * * * *'", '    task: { title: Second, capabilities: [shell], command: "true" }']));
    await waitFor('a card of the new schedule', () => audit(layout, 'schedule.fired').some((r) => r.details.schedule === 'second'), 30_000, up);
    // A new schedule does not run its past: its first fire time is after the file changed.
    const second = audit(layout, 'schedule.fired').filter((r) => r.details.schedule === 'second');
    expect(second[0]!.details.fireMs as number).toBeGreaterThan(changedMs);
    await stop(up);
  }, 240_000);

  it('across a restart: one card for the fire times missed while Warren was down, then the regular ones', async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    writeFileSync(join(layout.dir, 'kanban', 'schedules.yaml'), every2s('beat'));
    const first = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(first);
    await waitFor('a schedule.fired row', () => existsSync(join(layout.dir, 'var', 'warren.db')) && audit(layout, 'schedule.fired').length >= 1, 60_000, first);
    await stop(first);
    running.splice(running.indexOf(first), 1);
    const before = await scheduledCards(layout, 'beat');
    const lastBefore = before.at(-1)!.fireMs;
    expect(before.length).toBeGreaterThanOrEqual(1);

    // Down across at least three fire times.
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    const listed = JSON.parse(warrenSync(['schedule', 'list', '--json', ...layout.args()])) as { schedules: { name: string; due: boolean; lastFireMs: number }[] };
    expect(listed.schedules).toEqual([expect.objectContaining({ name: 'beat', due: true, lastFireMs: lastBefore })]);
    const restartMs = Date.now();
    const second = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(second);
    const deadline = Date.now() + 90_000;
    while ((await scheduledCards(layout, 'beat')).filter((c) => c.fireMs > lastBefore).length < 3) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the regular cards after the restart\n${second.stderr().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await stop(second);
    const after = await scheduledCards(layout, 'beat');
    // One card for the fire times missed while down (at least three of them): the latest at the
    // first tick after the restart, not the first missed; then the regular ones.
    const sinceStop = after.filter((c) => c.fireMs > lastBefore);
    const catchUp = sinceStop[0]!;
    expect(catchUp.fireMs - lastBefore).toBeGreaterThanOrEqual(3 * 2000);
    expect(catchUp.fireMs).toBeGreaterThanOrEqual(restartMs - 2000);
    expect(sinceStop.filter((c) => c.fireMs <= restartMs).length).toBeLessThanOrEqual(1);
    expect(sinceStop.length).toBeGreaterThanOrEqual(3);
    const fires = after.map((c) => c.fireMs);
    expect(new Set(fires).size).toBe(fires.length);
  }, 240_000);

  it("writes the card in the board's own format (a Backlog.md board), its schedule and fire time in the frontmatter", async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    const board = join(layout.dir, 'backlog');
    mkdirSync(join(board, 'tasks'), { recursive: true });
    writeFileSync(join(board, 'config.yml'), 'project_name: "Scheduled"\ndefault_status: "To Do"\nstatuses: ["To Do", "In Progress", "Done"]\nlabels: []\ntask_prefix: "task"\n');
    writeFileSync(
      join(board, 'schedules.yaml'),
      ['schedules:', '  - name: weekly', "    cron: '*/2 * * * * *'", '    timezone: Europe/Paris', '    task: { title: Weekly review, body: Look back., labels: [review], fields: { team: ops } }', ''].join('\n'),
    );
    const args = layout.args('up', '--kill-grace', '1s');
    args[args.indexOf('--board') + 1] = board;
    const up = startWarren(args);
    running.push(up);
    await waitFor('a schedule.fired row', () => existsSync(join(layout.dir, 'var', 'warren.db')) && audit(layout, 'schedule.fired').length >= 1, 60_000, up);
    await stop(up);
    const [fired] = audit(layout, 'schedule.fired');
    const snapshot = await loadBoard(board);
    expect(snapshot.format).toBe('backlog-md');
    const card = snapshot.tasks.find((t) => t.id === fired!.details.taskId)!;
    expect(card).toBeDefined();
    expect(card.relativePath).toMatch(/^tasks\/task-1 - Weekly-review\.md$/);
    expect(card.fields).toMatchObject({ schedule: 'weekly', schedule_fire: fired!.details.fireTime, team: 'ops' });
    expect(card.labels).toEqual(['review']);
    expect(card.body).toContain('Look back.');
    expect(isScheduledCard(card, 'weekly', fired!.details.fireMs as number)).toBe(true);
  }, 240_000);

  it('finds the card written before a crash instead of writing it twice', async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    const schedules = join(layout.dir, 'kanban', 'schedules.yaml');
    // A yearly schedule; its baseline is moved back below, so that its last fire time is due.
    writeFileSync(schedules, ['schedules:', '  - name: yearly', "    cron: '0 0 1 1 *'", '    task: { title: New year, capabilities: [shell], command: "true" }', ''].join('\n'));
    const first = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(first);
    await waitFor('the schedules loaded', () => first.stderr().includes('"msg":"schedules loaded"'), 60_000, first);
    await stop(first);
    running.splice(running.indexOf(first), 1);
    expect(audit(layout, 'schedule.fired')).toEqual([]);

    // As if a run wrote the card and died before recording it.
    const fireMs = compiled('0 0 1 1 *').latestFireMs(Date.now())!;
    const db = new Database(join(layout.dir, 'var', 'warren.db'));
    db.prepare('UPDATE schedules SET since_ms = ? WHERE name = ?').run(fireMs - 1, 'yearly');
    db.close();
    const fireTime = new Date(fireMs).toISOString();
    writeFileSync(
      join(layout.dir, 'kanban', 'tasks', 'new-year.md'),
      `---\nid: new-year\ntitle: New year\nstatus: ready\ncapabilities: [shell]\ncommand: "true"\nschedule: "yearly"\nschedule_fire: "${fireTime}"\n---\n${scheduleMarker('yearly', fireMs)}\n`,
    );
    const second = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(second);
    await waitFor('the schedule.fired row', () => audit(layout, 'schedule.fired').length >= 1, 60_000, second);
    await waitFor('the card done', () => /^status: done$/m.test(layout.file('new-year')), 120_000, second);
    await stop(second);
    expect(audit(layout, 'schedule.fired')).toEqual([expect.objectContaining({ details: expect.objectContaining({ schedule: 'yearly', fireMs, taskId: 'new-year', found: true }) })]);
    expect((await loadBoard(join(layout.dir, 'kanban'))).tasks.map((t) => t.id)).toEqual(['new-year']);
  }, 240_000);
});
