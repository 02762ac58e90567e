// The cost view and a task's usage and transcript in a real browser: Debian's chromium (through
// playwright-core, no browser download) against the real HTTP API (@warren/http on a free port of
// 127.0.0.1) over a real SQLite registry whose llm_usage rows are written with UsageLedger, as the
// gateway writes them, and whose audit trail holds the gateway's refusals and the agent's progress
// events. Screenshots are kept under test-artifacts/dashboard/; with WARREN_UPDATE_SCREENSHOTS=1 the
// README's light-theme 1280×800 screenshots docs/screenshots/cost.png and task-usage.png are
// written again too.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServer } from '@warren/http';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';
import { buildDashboard } from '../src/build.js';
import { openTestPorts, taskRow, type TestPorts } from '../../http/test/support.js';

const CHROMIUM = '/usr/bin/chromium';
const REPO = resolve(import.meta.dirname, '..', '..', '..');
const ARTIFACTS = join(REPO, 'test-artifacts', 'dashboard');
const DOCS = join(REPO, 'docs', 'screenshots');
const updateDocs = process.env.WARREN_UPDATE_SCREENSHOTS === '1';

const MINUTE = 60_000;

/**
 * The calls the gateway would have recorded over the last 50 minutes:
 * - fix-login attempt 1 (coder-1): 6 calls of 12,000 / 800 tokens, $0.048 each ($0.288);
 *   attempt 2 (coder-2): 4 calls of 10,000 / 600, $0.039 each ($0.156), and one answered 429;
 * - write-docs (writer-1, openai): 8 calls of 5,000 / 1,500, $0.0125 each ($0.10);
 * - triage (coder-1): 3 calls of 20,000 / 1,000, $0.08 each ($0.24);
 * - one call of coder-1 between tasks: 1,000 / 100, $0.004.
 * Totals: 23 calls (1 failed), 213,000 input and 22,300 output tokens, $0.788.
 */
function usageRows(nowMs: number): LlmUsageRow[] {
  const rows: LlmUsageRow[] = [];
  const at = (minutesAgo: number) => nowMs - minutesAgo * MINUTE;
  const coder = { template: 'coder', provider: 'anthropic', model: 'claude-sonnet-4', status: 200, durationMs: 900 };
  for (let i = 0; i < 6; i++) rows.push({ ...coder, tsMs: at(50 - i * 2), agent: 'coder-1', taskId: 'fix-login', attempt: 1, inputTokens: 12_000, outputTokens: 800, costUsd: 0.048 });
  for (let i = 0; i < 4; i++) rows.push({ ...coder, tsMs: at(30 - i * 2), agent: 'coder-2', taskId: 'fix-login', attempt: 2, inputTokens: 10_000, outputTokens: 600, costUsd: 0.039 });
  rows.push({ ...coder, tsMs: at(21), agent: 'coder-2', taskId: 'fix-login', attempt: 2, inputTokens: 0, outputTokens: 0, costUsd: 0, status: 429 });
  for (let i = 0; i < 8; i++) {
    rows.push({ template: 'writer', provider: 'openai', model: 'gpt-5-mini', status: 200, durationMs: 600, tsMs: at(40 - i * 3), agent: 'writer-1', taskId: 'write-docs', attempt: 1, inputTokens: 5_000, outputTokens: 1_500, costUsd: 0.0125 });
  }
  for (let i = 0; i < 3; i++) rows.push({ ...coder, tsMs: at(12 - i * 4), agent: 'coder-1', taskId: 'triage', attempt: 1, inputTokens: 20_000, outputTokens: 1_000, costUsd: 0.08 });
  rows.push({ ...coder, tsMs: at(2), agent: 'coder-1', taskId: null, attempt: null, inputTokens: 1_000, outputTokens: 100, costUsd: 0.004 });
  return rows;
}

/** The agent events of fix-login's second attempt, as `task.progress` details. */
const EVENTS: Record<string, unknown>[] = [
  { kind: 'session', sessionId: 'sess-7f3a', model: 'claude-sonnet-4' },
  { kind: 'text', text: 'The login form posts to /session but the redirect drops the return path. Let me look.' },
  { kind: 'tool_call', id: 'toolu_1', name: 'Bash', input: { command: 'grep -rn returnTo src/' } },
  { kind: 'tool_result', id: 'toolu_1', output: 'src/login.ts:42:  const returnTo = params.get("next");\n', isError: false },
  { kind: 'tool_call', id: 'toolu_2', name: 'Edit', input: { file_path: 'src/login.ts', old_string: 'params.get("next")', new_string: 'params.get("returnTo")' } },
  { kind: 'tool_result', id: 'toolu_2', output: 'The file src/login.ts has been updated.', isError: false },
  { kind: 'usage', inputTokens: 10_000, outputTokens: 600, costUsd: 0.039, model: 'claude-sonnet-4' },
  { kind: 'raw', source: 'claude-code', line: { type: 'system', subtype: 'hook_response' } },
];

describe('the cost view and the task transcript in chromium', () => {
  let dir: string;
  let ports: TestPorts;
  let server: HttpServer;
  let context: BrowserContext | undefined;
  let token: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-cost-'));
    const built = await buildDashboard({ outDir: join(dir, 'site') });
    ports = await openTestPorts();
    const nowMs = Date.now();
    const ledger = new UsageLedger(ports.db);
    for (const row of usageRows(nowMs)) ledger.record(row);
    ports.emit({ actor: 'agent:coder-2', action: 'llm.refused', object: 'task:fix-login', details: { reason: 'budget_exceeded', limit: 'task.usd' } });
    ports.emit({ actor: 'agent:coder-2', action: 'llm.refused', object: 'task:fix-login', details: { reason: 'budget_exceeded', limit: 'task.usd' } });
    ports.emit({ actor: 'agent:writer-1', action: 'llm.refused', object: 'task:write-docs', details: { reason: 'provider_not_allowed', provider: 'mistral' } });
    const state = ports.registry.state;
    state.putTask(taskRow('fix-login', { state: 'running', attempt: 2, agent: 'coder-2' }));
    state.addAssignment('fix-login', 1, 'coder-1', nowMs - 51 * MINUTE, nowMs - 52 * MINUTE);
    state.finishAssignment('fix-login', 1, { outcome: 'failed', exitCode: 1, summary: 'tests failed', outputs: [] }, nowMs - 39 * MINUTE);
    state.addAssignment('fix-login', 2, 'coder-2', nowMs - 31 * MINUTE, nowMs - 32 * MINUTE);
    state.setAssignmentState('fix-login', 2, 'acked', nowMs - 31 * MINUTE + 500);
    for (const event of EVENTS) ports.emit({ actor: 'agent:coder-2', action: 'task.progress', object: 'task:fix-login', details: { attempt: 2, message: String(event.kind), event } });
    server = await startHttpServer(ports, { host: '127.0.0.1', port: 0, staticDir: built.outDir, rateLimit: false });
    token = ports.tokens.create({ name: 'olga', role: 'operator' }, nowMs).token;
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(REPO, 'test-artifacts', '.gitignore'), '*\n');
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    ports?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function shot(page: Page, name: string, docs?: string): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    if (docs !== undefined && updateDocs) {
      mkdirSync(DOCS, { recursive: true });
      await page.screenshot({ path: join(DOCS, `${docs}.png`) });
    }
  }

  /** A signed-in page (the sign-in link sets the session cookie) with console and page errors collected. */
  async function signedIn(): Promise<{ page: Page; errors: string[] }> {
    const page = await context!.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(`${server.url}/signin?token=${token}`);
    await page.getByTestId('whoami').waitFor({ state: 'visible', timeout: 30_000 });
    return { page, errors };
  }

  it('shows the totals, the charts, the top tasks, the templates, agents, models and refusals of the rows written', async () => {
    const { page, errors } = await signedIn();
    await page.getByTestId('nav-cost').click();
    await page.getByTestId('cost-kpis').waitFor({ state: 'visible', timeout: 30_000 });
    const text = async (testid: string) => (await page.getByTestId(testid).textContent())?.trim();
    expect(await text('cost-total')).toBe('$0.79');
    expect(await text('cost-input')).toBe('213.0 k');
    expect(await text('cost-output')).toBe('22.3 k');
    expect(await text('cost-calls')).toBe('23');
    expect(await text('cost-failed')).toBe('1');
    expect(await text('cost-refused')).toBe('3');
    // uPlot drew both series charts.
    await page.locator('[data-testid="chart-tokens"] canvas').waitFor({ state: 'attached', timeout: 30_000 });
    await page.locator('[data-testid="chart-cost"] canvas').waitFor({ state: 'attached', timeout: 30_000 });

    const rows = async (testid: string) => page.getByTestId(testid).locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.replace(/\s+/g, ' ').trim())));
    expect(await rows('cost-tasks')).toEqual([
      ['fix-login', 'coder-2 coder', '2', '11 (1 failed)', '112.0 k / 7.2 k', '$0.44'],
      ['triage', 'coder-1 coder', '1', '3', '60.0 k / 3.0 k', '$0.24'],
      ['write-docs', 'writer-1 writer', '1', '8', '40.0 k / 12.0 k', '$0.10'],
    ]);
    expect(await rows('cost-templates')).toEqual([
      ['coder', '15 (1 failed)', '173.0 k / 10.3 k', '$0.69'],
      ['writer', '8', '40.0 k / 12.0 k', '$0.10'],
    ]);
    expect((await rows('cost-agents')).map((r) => [r[0], r[3]])).toEqual([
      ['coder-1 coder', '$0.53'],
      ['coder-2 coder', '$0.16'],
      ['writer-1 writer', '$0.10'],
    ]);
    expect((await rows('cost-models')).map((r) => [r[0], r[3]])).toEqual([
      ['claude-sonnet-4 anthropic', '$0.69'],
      ['gpt-5-mini openai', '$0.10'],
    ]);
    expect((await page.getByTestId('cost-refusals').textContent())?.replace(/\s+/g, ' ')).toBe('budget_exceeded2provider_not_allowed1');
    await shot(page, 'cost', 'cost');

    // The top task links to its task view.
    await page.getByTestId('cost-tasks').getByRole('link', { name: 'fix-login' }).click();
    await page.getByTestId('task-usage').waitFor({ state: 'visible', timeout: 30_000 });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a task's usage per attempt and the agent's transcript, raw lines folded, new events live", async () => {
    const { page, errors } = await signedIn();
    await page.goto(`${server.url}/#/tasks/fix-login`);
    await page.getByTestId('task-usage').waitFor({ state: 'visible', timeout: 30_000 });
    const cells = await page.getByTestId('task-usage').locator('tbody tr, tfoot tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td, th')].map((td) => td.textContent?.replace(/\s+/g, ' ').trim())));
    expect(cells).toEqual([
      ['1', 'coder-1', 'anthropic/claude-sonnet-4', '6', '72.0 k', '4.8 k', '$0.29'],
      ['2', 'coder-2', 'anthropic/claude-sonnet-4', '5 (1 failed)', '40.0 k', '2.4 k', '$0.16'],
      ['Total', '11', '112.0 k', '7.2 k', '$0.44'],
    ]);

    const transcript = page.getByTestId('task-transcript');
    await transcript.waitFor({ state: 'visible', timeout: 30_000 });
    await expect(transcript.locator('.ev-text').first().textContent()).resolves.toContain('the redirect drops the return path');
    await expect(transcript.locator('.ev-tool summary').allTextContents()).resolves.toEqual(['tool Bash', 'tool Edit']);
    await expect(transcript.locator('.ev-usage').textContent()).resolves.toContain('10.0 k in / 600 out · $0.039');
    // A raw line is folded: its summary shows, its content does not until opened.
    const raw = transcript.locator('.ev-raw');
    await expect(raw.locator('summary').textContent()).resolves.toBe('unrecognised line from claude-code');
    expect(await raw.locator('pre').isVisible()).toBe(false);
    await raw.locator('summary').click();
    await expect(raw.locator('pre').textContent()).resolves.toContain('hook_response');

    // The agent's final answer arrives as an event on the stream, and the transcript shows it.
    ports.emit({ actor: 'agent:coder-2', action: 'task.progress', object: 'task:fix-login', details: { attempt: 2, message: 'final', event: { kind: 'final', text: 'Fixed the login redirect: returnTo is read again.', isError: false } } });
    await page.getByTestId('transcript-final').waitFor({ state: 'visible', timeout: 30_000 });
    await expect(page.getByTestId('transcript-final').textContent()).resolves.toContain('Fixed the login redirect');
    // Progress rows stay out of the audit table.
    await expect(page.getByTestId('task-audit').locator('td', { hasText: 'task.progress' }).count()).resolves.toBe(0);
    // The screenshot: the raw line folded again, the first tool call opened, the usage under the header.
    await raw.locator('summary').click();
    await transcript.locator('.ev-tool summary').first().click();
    await page.evaluate(() => {
      const table = document.querySelector('[data-testid="task-usage"]');
      if (table !== null) window.scrollTo(0, table.getBoundingClientRect().top + window.scrollY - 110);
    });
    await shot(page, 'task-usage', 'task-usage');
    expect(errors).toEqual([]);
    await page.close();
  });
});
