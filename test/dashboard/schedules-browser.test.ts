/**
 * The dashboard's Schedules view against `warren up` with a `schedules.yaml` on its board: Debian's
 * chromium (playwright-core, no browser download) signs in with the token `warren up` printed and
 * sees each schedule with its cron expression and time zone, the last fire and the task it wrote
 * (whose link opens that task's view), the next fire, and the schedule the file left out with its
 * line. What the page shows is compared with `GET /api/v1/schedules` read with the same session.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, repo, requireMachine, startWarren, waitFor, type CliProcess } from '../support/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(repo, 'test-artifacts', 'dashboard');
const { layouts, running } = cleanUpAfterEach();
let context: BrowserContext | undefined;

beforeAll(() => requireMachine());
afterEach(async () => {
  await context?.close();
  context = undefined;
});

/** The dashboard address and sign-in token `warren up` printed on stderr. */
async function signInOf(up: CliProcess): Promise<{ origin: string; token: string }> {
  await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()), 90_000);
  const link = new URL(/Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!);
  const token = link.searchParams.get('token');
  if (token === null) throw new Error(`no token in the sign-in link ${link.href}`);
  return { origin: link.origin, token };
}

interface ListedSchedule {
  name: string;
  cron: string;
  timezone: string | null;
  lastFireMs: number | null;
  lastTaskId: string | null;
  nextFireMs: number | null;
  due: boolean;
}

describe('the Schedules view against warren up', () => {
  it('shows each schedule with its cron, time zone, last and next fire, the last task (a link to it) and the file\'s problems', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(repo, 'test-artifacts', '.gitignore'), '*\n');
    const made = makeTestLayout({});
    layouts.push(made);
    writeFileSync(
      join(made.dir, 'kanban', 'schedules.yaml'),
      [
        'schedules:',
        '  - name: beat',
        "    cron: '*/3 * * * * *'",
        '    task:',
        '      title: Heartbeat',
        '      capabilities: [shell]',
        "      command: 'echo beat'",
        '  - name: morning-report',
        "    cron: '0 9 * * 1-5'",
        '    timezone: America/New_York',
        '    task: { title: Morning report, capabilities: [shell], command: "echo report" }',
        '  - name: broken',
        "    cron: '0 25 * * *'",
        '    task: { title: Never }',
        '',
      ].join('\n'),
    );
    const up = startWarren(made.args('up', '--http', '127.0.0.1:0', '--kill-grace', '1s'));
    running.push(up);
    const { origin, token } = await signInOf(up);
    const host = new URL(origin).host;

    context = await chromium.launchPersistentContext(join(made.dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      colorScheme: 'light',
    });
    const page = await context.newPage();
    const errors: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      // Before signing in, the session check is answered 401, which chromium logs as a failed load.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      if (new URL(r.url()).host !== host) foreign.push(r.url());
    });

    await page.goto(`${origin}/`);
    await page.getByTestId('signin-token').fill(token);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('fleet-view').waitFor({ timeout: 30_000 });
    await page.getByTestId('nav-schedules').click();
    await page.getByTestId('schedules-view').waitFor({ timeout: 30_000 });
    await page.getByTestId('schedules-table').waitFor({ timeout: 30_000 });

    // The file's problem: the schedule left out, with its line and field.
    await expect(page.getByTestId('schedule-problem').allTextContents()).resolves.toEqual([expect.stringMatching(/schedules\.yaml:13: schedule 'broken': 'cron' /)]);
    await expect(page.getByTestId('schedules-file').textContent()).resolves.toMatch(/kanban\/schedules\.yaml$/);

    // The heartbeat has fired and written a task: its row shows the task as a link (the view refetches on board writes).
    const beat = page.locator('[data-testid="schedule"][data-schedule="beat"]');
    await beat.locator('a[data-testid="schedule-task"]').waitFor({ timeout: 90_000 });
    await expect(beat.getByTestId('schedule-cron').textContent()).resolves.toBe('*/3 * * * * *');
    await expect(beat.getByTestId('schedule-timezone').textContent()).resolves.toBe('UTC');
    await expect(beat.getByTestId('schedule-last').textContent()).resolves.toMatch(/ago|now/);
    await expect(beat.getByTestId('schedule-last').textContent()).resolves.toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    await expect(beat.getByTestId('schedule-next').textContent()).resolves.toMatch(/^(in |now)/);

    // The morning report has not fired: no last fire, no task; its next fire is 9:00 on its own clock.
    const morning = page.locator('[data-testid="schedule"][data-schedule="morning-report"]');
    await expect(morning.getByTestId('schedule-timezone').textContent()).resolves.toBe('America/New_York');
    await expect(morning.getByTestId('schedule-last').textContent()).resolves.toBe('–');
    await expect(morning.getByTestId('schedule-task').textContent()).resolves.toBe('–');
    await expect(morning.getByTestId('schedule-next').textContent()).resolves.toMatch(/^in .*\d{4}-\d\d-\d\d 09:00:00 America\/New_York$/);
    await expect(morning.getByTestId('schedule-state').textContent()).resolves.toBe('waiting');

    // The page agrees with the API (same session): the schedules shown and their next fire times.
    const listed = (await (await page.request.get(`${origin}/api/v1/schedules`)).json()) as { schedules: ListedSchedule[]; problems: { message: string }[] };
    expect(listed.schedules.map((s) => s.name).sort()).toEqual(['beat', 'morning-report']);
    expect(await page.getByTestId('schedule').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-schedule')).sort())).toEqual(['beat', 'morning-report']);
    const apiMorning = listed.schedules.find((s) => s.name === 'morning-report')!;
    expect(apiMorning).toMatchObject({ timezone: 'America/New_York', lastFireMs: null, lastTaskId: null, due: false });
    await expect(morning.locator('[data-testid="schedule-next"]').getAttribute('data-ms')).resolves.toBe(String(apiMorning.nextFireMs));
    await page.screenshot({ path: join(ARTIFACTS, 'schedules.png'), fullPage: true });

    // The last task's link opens its task view.
    const link = beat.locator('a[data-testid="schedule-task"]');
    const taskId = (await link.textContent())!;
    await link.click();
    await page.getByTestId('task-view').waitFor({ timeout: 30_000 });
    expect(decodeURIComponent(new URL(page.url()).hash)).toBe(`#/tasks/${taskId}`);
    await page.getByTestId('attempt').first().waitFor({ timeout: 60_000 });

    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
  });
});
