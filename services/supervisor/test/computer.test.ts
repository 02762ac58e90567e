import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openAccounts } from '@warren/accounts';
import { openAudit } from '@warren/audit';
import { silentLogger } from '@warren/core';
import { loadPolicy, PolicyDeniedError } from '@warren/policy';
import { openDatabase } from '@warren/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestLayout, processesOfUids, repo, requireMachine, shellTask, startWarren, waitFor, warren, type AuditRow, type TestLayout } from '../../../test/support/cli.js';
import { createAgentRuntime } from '../src/agent-runtime.js';
import { ComputerError, createAgentComputer, OUTPUT_CAP_BYTES, type AgentComputer } from '../src/agents/computer.js';
import { createAuthorizer } from '../src/authorize.js';
import { configFrom } from '../src/cli/common.js';
import { loadTemplates, type AgentTemplate } from '../src/templates.js';

// An agent's computer over real sandboxes: one agent account made by a first `warren run`, then
// the computer built in this process over the layout's database, policy and templates (as the
// supervisor builds it over its context), while no supervisor runs.

const ROOT = 'user:root';
let layout: TestLayout;
let agent: { name: string; uid: number };

beforeAll(async () => {
  requireMachine();
  layout = makeTestLayout({ first: shellTask('first', 'echo ready') });
  const run = await warren(layout.args('run', '--until-idle'));
  expect(run.code, run.stderr.slice(-2000)).toBe(0);
  const accounts = JSON.parse((await warren(['accounts', '--json', ...layout.args()])).stdout) as { name: string; uid: number }[];
  agent = accounts[0]!;
});

afterAll(() => layout?.remove());

/**
 * Builds the computer over the layout (database, accounts, templates, policy, runtime), runs `fn`
 * with it and closes everything. `adjust` may change the templates and say which agents run.
 */
async function withComputer<T>(
  fn: (computer: AgentComputer) => Promise<T>,
  adjust: { templates?: (map: Map<string, AgentTemplate>) => void; running?: boolean } = {},
): Promise<T> {
  const args = layout.args();
  const flag = (name: string): string => args[args.indexOf(name) + 1]!;
  const config = configFrom(
    { root: repo, board: flag('--board'), home: flag('--home'), stateDir: flag('--state-dir'), policies: flag('--policies'), uidRange: flag('--uid-range') },
    {},
  );
  const runtime = createAgentRuntime(config, { logger: silentLogger, hostEnv: {} });
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  try {
    const audit = openAudit(db);
    const accounts = openAccounts(db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
    const templates = new Map((await loadTemplates(config.agentsDir, config.root)).templates);
    adjust.templates?.(templates);
    const policy = await loadPolicy({ modelPath: join(config.policiesDir, 'model.conf'), policyPath: join(config.policiesDir, 'policy.csv'), logger: silentLogger });
    const authorizer = createAuthorizer({ policy, emit: (entry) => audit.append(entry), logger: silentLogger });
    const computer = createAgentComputer({
      runtime,
      accounts,
      templates,
      authorizer,
      emit: (event) => audit.append(event),
      isRunning: () => adjust.running ?? false,
      stateDir: config.stateDir,
      killGraceMs: 1000,
      logger: silentLogger,
    });
    try {
      return await fn(computer);
    } finally {
      await computer.close();
      await computer.close();
    }
  } finally {
    db.close();
    await runtime.close();
  }
}

async function auditRows(action: string): Promise<AuditRow[]> {
  const out = await warren(['audit', '--json', '--action', action, ...layout.args()]);
  return JSON.parse(out.stdout) as AuditRow[];
}

/** The code of the ComputerError `promise` rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ComputerError);
  return (error as ComputerError).code;
}

describe("an agent's computer: commands", () => {
  it('runs a command as the agent in its home and returns its output and exit code', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const run = await computer.runCommand(agent.name, { command: 'echo out; echo err >&2; exit 7' }, ROOT);
      expect(run).toMatchObject({ exitCode: 7, signal: null, stdout: 'out\n', stderr: 'err\n', truncated: false, timedOut: false, reason: null });
      const who = await computer.runCommand(agent.name, { command: 'id -u; pwd; cat', stdin: 'from stdin ✓' }, ROOT);
      expect(who.stdout).toBe(`${agent.uid}\n/home/${agent.name}\nfrom stdin ✓`);
      expect(who.exitCode).toBe(0);
      await computer.runCommand(agent.name, { command: 'mkdir -p sub/dir' }, ROOT);
      const inDir = await computer.runCommand(agent.name, { command: 'pwd', cwd: 'sub/dir' }, ROOT);
      expect(inDir.stdout).toBe(`/home/${agent.name}/sub/dir\n`);
    });
    const starts = await auditRows('agent.exec');
    expect(starts.some((row) => row.object === `agent:${agent.name}` && JSON.stringify(row.details.argv) === JSON.stringify(['/bin/sh', '-c', 'echo out; echo err >&2; exit 7']))).toBe(true);
    const ends = await auditRows('agent.exec_exit');
    expect(ends.some((row) => (row.details.exit as { kind: string; exitCode: number }).exitCode === 7)).toBe(true);
  });

  it("kills the command's whole tree at its time limit", { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const run = await computer.runCommand(agent.name, { command: 'trap "" TERM; (sleep 4; echo late > late.txt) & echo started; sleep 1000', timeoutMs: 1500 }, ROOT);
      expect(run.timedOut).toBe(true);
      expect(run.exitCode).toBeNull();
      expect(run.signal).toBe('SIGKILL');
      expect(run.stdout).toBe('started\n');
      expect(processesOfUids(new Set([agent.uid]))).toEqual([]);
      // Had the background child survived, it would have written late.txt by now.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      expect(await codeOf(computer.readFile(agent.name, { path: 'late.txt' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
    });
  });

  it('keeps the first MiB of each stream and says the output was truncated', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const run = await computer.runCommand(agent.name, { command: "head -c 3000000 /dev/zero | tr '\\0' a; echo done >&2" }, ROOT);
      expect(run.exitCode).toBe(0);
      expect(run.truncated).toBe(true);
      expect(run.stdout.length).toBe(OUTPUT_CAP_BYTES);
      expect(run.stdout).toBe('a'.repeat(OUTPUT_CAP_BYTES));
      expect(run.stderr).toBe('done\n');
    });
  });

  it('runs calls made at once side by side', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      // Each waits for the other's flag: they end only if both run at the same time.
      const wait = (mine: string, theirs: string): string => `touch ${mine}.flag; while [ ! -e ${theirs}.flag ]; do sleep 0.1; done; echo ${mine}`;
      await computer.runCommand(agent.name, { command: 'rm -f a.flag b.flag' }, ROOT);
      const runs = await Promise.all([
        computer.runCommand(agent.name, { command: wait('a', 'b'), timeoutMs: 60_000 }, ROOT),
        computer.runCommand(agent.name, { command: wait('b', 'a'), timeoutMs: 60_000 }, ROOT),
      ]);
      expect(runs.map((run) => [run.stdout, run.timedOut])).toEqual([['a\n', false], ['b\n', false]]);
    });
  });

  it('refuses bad input with clear errors', async () => {
    await withComputer(async (computer) => {
      expect(await codeOf(computer.runCommand(agent.name, { command: '' }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.runCommand(agent.name, { command: 'true', timeoutMs: 0 }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.runCommand(agent.name, { command: 'true', timeoutMs: 11 * 60_000 }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.runCommand(agent.name, { command: 'x'.repeat(70_000) }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'big', content: 'x'.repeat(2 ** 20 + 1) }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'b64', content: 'not base64!', encoding: 'base64' }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.readFile(agent.name, { path: 'x', maxBytes: 2 ** 21 }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
      expect(await codeOf(computer.runCommand('nobody-here', { command: 'true' }, ROOT))).toBe('WARREN_COMPUTER_AGENT');
    });
  });
});

describe("an agent's computer: files", () => {
  it('writes a file and reads it back, appends, makes parent directories and lists them', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const text = 'first line ✓\n';
      expect(await computer.writeFile(agent.name, { path: 'notes/day/a.txt', content: text }, ROOT)).toEqual({ path: 'notes/day/a.txt', sizeBytes: Buffer.byteLength(text) });
      expect(await computer.writeFile(agent.name, { path: `/home/${agent.name}/notes/day/a.txt`, content: 'second\n', append: true }, ROOT)).toMatchObject({ sizeBytes: Buffer.byteLength(text) + 7 });
      const read = await computer.readFile(agent.name, { path: 'notes/day/a.txt' }, ROOT);
      expect(read).toEqual({ path: 'notes/day/a.txt', content: `${text}second\n`, encoding: 'utf8', sizeBytes: Buffer.byteLength(text) + 7, truncated: false });
      expect(await computer.readFile(agent.name, { path: 'notes/day/a.txt', maxBytes: 5 }, ROOT)).toMatchObject({ content: 'first', truncated: true });
      const owner = await computer.runCommand(agent.name, { command: 'stat -c %u notes/day/a.txt' }, ROOT);
      expect(owner.stdout).toBe(`${agent.uid}\n`);
      const listing = await computer.listDirectory(agent.name, { path: 'notes' }, ROOT);
      expect(listing.path).toBe('notes');
      expect(listing.truncated).toBe(false);
      expect(listing.entries).toEqual([{ name: 'day', type: 'directory', sizeBytes: expect.any(Number) as number, modifiedMs: expect.any(Number) as number }]);
      const home = await computer.listDirectory(agent.name, {}, ROOT);
      expect(home.path).toBe('.');
      expect(home.entries.map((e) => e.name)).toContain('notes');
      expect(await codeOf(computer.readFile(agent.name, { path: 'notes' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      expect(await codeOf(computer.listDirectory(agent.name, { path: 'notes/day/a.txt' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      expect(await codeOf(computer.readFile(agent.name, { path: 'missing.txt' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      await computer.runCommand(agent.name, { command: 'mkfifo pipe' }, ROOT);
      expect(await codeOf(computer.readFile(agent.name, { path: 'pipe' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'pipe', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'notes', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
      expect(await codeOf(computer.readFile(agent.name, { path: 'x'.repeat(5000) }, ROOT))).toBe('WARREN_COMPUTER_LIMIT');
    });
  });

  it('round-trips binary content as base64', { timeout: 120_000 }, async () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc3]), randomBytes(64 * 1024)]);
    await withComputer(async (computer) => {
      expect(await computer.writeFile(agent.name, { path: 'blob.bin', content: bytes.toString('base64'), encoding: 'base64' }, ROOT)).toEqual({ path: 'blob.bin', sizeBytes: bytes.length });
      const read = await computer.readFile(agent.name, { path: 'blob.bin' }, ROOT);
      expect(read.encoding).toBe('base64');
      expect(Buffer.from(read.content, 'base64').equals(bytes)).toBe(true);
      const sum = await computer.runCommand(agent.name, { command: 'sha256sum < blob.bin' }, ROOT);
      expect(sum.stdout.split(' ')[0]).toBe((await import('node:crypto')).createHash('sha256').update(bytes).digest('hex'));
    });
  });

  it('refuses ../, an absolute path outside the home and symbolic links leading out of it', { timeout: 180_000 }, async () => {
    await withComputer(async (computer) => {
      await computer.runCommand(agent.name, { command: 'ln -sfn /etc escape; ln -sfn /tmp/nowhere dangling; ln -sfn ../.. up; ln -sfn notes inner' }, ROOT);
      expect(await codeOf(computer.readFile(agent.name, { path: '../x' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.readFile(agent.name, { path: '/etc/passwd' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.writeFile(agent.name, { path: '/tmp/x', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.listDirectory(agent.name, { path: '..' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.runCommand(agent.name, { command: 'pwd', cwd: '../..' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.readFile(agent.name, { path: 'escape/passwd' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.listDirectory(agent.name, { path: 'escape' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.listDirectory(agent.name, { path: 'up' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'escape/new.conf', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'dangling', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      expect(await codeOf(computer.writeFile(agent.name, { path: 'up/elsewhere/x', content: 'x' }, ROOT))).toBe('WARREN_COMPUTER_PATH');
      // A link that stays inside the home is followed, and the resolved path is reported.
      expect(await computer.writeFile(agent.name, { path: 'inner/linked.txt', content: 'in' }, ROOT)).toEqual({ path: 'notes/linked.txt', sizeBytes: 2 });
      const listing = await computer.listDirectory(agent.name, {}, ROOT);
      expect(listing.entries.find((e) => e.name === 'escape')?.type).toBe('symlink');
    });
  });

  it('refuses a principal the policy denies, and audits the denial', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const refused = await computer.runCommand(agent.name, { command: 'touch pwned' }, 'user:mallory').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(PolicyDeniedError);
      await expect(computer.readFile(agent.name, { path: 'notes/day/a.txt' }, 'user:mallory')).rejects.toBeInstanceOf(PolicyDeniedError);
      expect(await codeOf(computer.readFile(agent.name, { path: 'pwned' }, ROOT))).toBe('WARREN_COMPUTER_FILE');
    });
    const decisions = await auditRows('policy.decide');
    const denied = decisions.filter((row) => row.object === `agent:${agent.name}` && row.details.sub === 'user:mallory');
    expect(denied.map((row) => row.details.operation)).toEqual(['run_command', 'read_file']);
    expect(denied.every((row) => row.details.act === 'exec')).toBe(true);
    const execs = await auditRows('agent.exec');
    expect(execs.some((row) => JSON.stringify(row.details.argv).includes('touch pwned'))).toBe(false);
  });

  it('refuses a stopped agent whose home is a quota image attached only while it runs', async () => {
    const withQuota = (map: Map<string, AgentTemplate>): void => {
      for (const [name, template] of map) map.set(name, { ...template, homeQuotaBytes: 64 * 2 ** 20 });
    };
    await withComputer(async (computer) => {
      expect(await codeOf(computer.listDirectory(agent.name, {}, ROOT))).toBe('WARREN_COMPUTER_AGENT');
    }, { templates: withQuota });
  });
});

describe("an agent's computer keeps its files", () => {
  it('a file written there is found by the agent when it runs again, and next time through the computer', { timeout: 240_000 }, async () => {
    await withComputer(async (computer) => {
      await computer.writeFile(agent.name, { path: 'keep/plan.txt', content: 'kept\n' }, ROOT);
    });
    writeFileSync(join(layout.dir, 'kanban', 'tasks', 'second.md'), shellTask('second', 'test "$(cat "$HOME/keep/plan.txt")" = kept && echo kept >> "$HOME/keep/plan.txt"'));
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    expect(layout.file('second')).toMatch(/^status: done/m);
    await withComputer(async (computer) => {
      expect((await computer.readFile(agent.name, { path: 'keep/plan.txt' }, ROOT)).content).toBe('kept\nkept\n');
    });
  });
});

describe("an agent's computer while the agent runs", () => {
  it('runs beside the running agent, over the same home', { timeout: 240_000 }, async () => {
    writeFileSync(join(layout.dir, 'kanban', 'tasks', 'third.md'), shellTask('third', 'echo busy > "$HOME/busy.txt"; sleep 600'));
    const up = startWarren(layout.args('up'));
    try {
      // Read on the host side by the test only, to know when the task got going.
      const busy = join(layout.dir, 'home', 'shell', agent.name, 'busy.txt');
      await waitFor('the agent running its task', () => /^status: in_progress/m.test(layout.file('third')) && existsSync(busy), 120_000);
      await withComputer(async (computer) => {
        const run = await computer.runCommand(agent.name, { command: 'cat busy.txt; echo beside > beside.txt' }, ROOT);
        expect(run).toMatchObject({ exitCode: 0, stdout: 'busy\n' });
        expect((await computer.readFile(agent.name, { path: 'beside.txt' }, ROOT)).content).toBe('beside\n');
      }, { running: true });
    } finally {
      up.child.kill('SIGTERM');
      await up.done;
    }
  });

  it('close() stops a running command and refuses later calls', { timeout: 120_000 }, async () => {
    await withComputer(async (computer) => {
      const running = computer.runCommand(agent.name, { command: 'sleep 1000' }, ROOT);
      await waitFor('the command to run', () => processesOfUids(new Set([agent.uid])).length > 0);
      await computer.close();
      expect(['SIGTERM', 'SIGKILL']).toContain((await running).signal);
      expect(processesOfUids(new Set([agent.uid]))).toEqual([]);
      expect(await codeOf(computer.runCommand(agent.name, { command: 'true' }, ROOT))).toBe('WARREN_COMPUTER_AGENT');
    });
  });
});
