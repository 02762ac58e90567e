/**
 * A layout for the agent runtimes' end-to-end tests: the coding-agents example (its Backlog.md
 * board, templates and repository) copied to a temp dir, the repository's policy with the
 * templates as workers, and provider files pointing at a fake LLM server in this process whose key
 * is a gateway secret set with `warren secret set --gateway`. Warren runs as a child (never
 * spawnSync: the fake answers from this process's event loop).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startFakeLlm, type FakeLlm, type FakeLlmScript } from '@warren/testing';
import { cli, repo, uniqueUidRange } from '../support/cli.js';

export const example = join(repo, 'examples', 'coding-agents');

/** One test's layout; `remove()` deletes it and stops the fake. */
export interface AgentsLayout {
  readonly dir: string;
  readonly fake: FakeLlm;
  /** The provider key: a gateway secret, never meant to enter a sandbox. */
  readonly key: string;
  /** `warren <command>` arguments with every path of the layout. */
  args(...extra: string[]): string[];
  /** The layout's agent uid range, `MIN-MAX`. */
  readonly uidRange: string;
  /** Rows of the state database (read-only). */
  query<T>(sql: string, ...params: unknown[]): T[];
  remove(): Promise<void>;
}

/**
 * Makes the layout: `templates` (file name → YAML) replace the example's templates when given;
 * `tasks` (file name → text) replace its cards when given.
 */
export async function makeAgentsLayout(script: FakeLlmScript, options: { templates?: Record<string, string>; tasks?: Record<string, string> } = {}): Promise<AgentsLayout> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-agents-'));
  cpSync(join(example, 'backlog'), join(dir, 'backlog'), { recursive: true });
  cpSync(join(example, 'mapping.yaml'), join(dir, 'mapping.yaml'));
  cpSync(join(example, 'app'), join(dir, 'app'), { recursive: true });
  mkdirSync(join(dir, 'agents'));
  cpSync(join(example, 'agents', 'AGENTS.md'), join(dir, 'agents', 'AGENTS.md'));
  if (options.templates) for (const [name, text] of Object.entries(options.templates)) writeFileSync(join(dir, 'agents', name), text);
  else cpSync(join(example, 'agents'), join(dir, 'agents'), { recursive: true });
  if (options.tasks) {
    rmSync(join(dir, 'backlog', 'tasks'), { recursive: true });
    mkdirSync(join(dir, 'backlog', 'tasks'));
    for (const [name, text] of Object.entries(options.tasks)) writeFileSync(join(dir, 'backlog', 'tasks', name), text);
  }
  const git = (...args: string[]) => execFileSync('git', ['-C', join(dir, 'app'), '-c', 'user.name=Test', '-c', 'user.email=test@localhost', ...args], { stdio: 'ignore' });
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'greeter');
  cpSync(join(repo, 'policies'), join(dir, 'policies'), { recursive: true });
  const templates = readdirSync(join(dir, 'agents')).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length));
  appendFileSync(join(dir, 'policies', 'policy.csv'), `\n${templates.map((t) => `g, template:${t}, role:worker`).join('\n')}\n`);
  const key = `sk-test-${randomBytes(16).toString('hex')}`;
  const fake = await startFakeLlm({ script, apiKey: key });
  mkdirSync(join(dir, 'providers'));
  const provider = (name: string, wire: string, base: string) => `name: ${name}\nbaseUrl: ${base}\nwire: ${wire}\nkey: { secret: PROVIDER_KEY }\nprices:\n  claude-sonnet-4-5: { input: 3, output: 15 }\n  gpt-5.2: { input: 1.25, output: 10 }\n`;
  writeFileSync(join(dir, 'providers', 'anthropic.yaml'), provider('anthropic', 'anthropic-messages', fake.url));
  writeFileSync(join(dir, 'providers', 'openai.yaml'), provider('openai', 'openai-chat', `${fake.url}/v1`));
  writeFileSync(join(dir, 'providers', 'openai-responses.yaml'), provider('openai-responses', 'openai-responses', `${fake.url}/v1`));
  const uidRange = uniqueUidRange();
  const args = (...extra: string[]) => [
    ...extra,
    '--board', join(dir, 'backlog'),
    '--agents', join(dir, 'agents'),
    '--providers', join(dir, 'providers'),
    '--policies', join(dir, 'policies'),
    '--state-dir', join(dir, 'var'),
    '--home', join(dir, 'home'),
    '--uid-range', uidRange,
  ];
  for (const template of templates) {
    const set = spawnSync(process.execPath, [cli, 'secret', 'set', template, 'PROVIDER_KEY', '--gateway', '--state-dir', join(dir, 'var')], { input: key, encoding: 'utf8' });
    if (set.status !== 0) throw new Error(`warren secret set: ${set.stderr}`);
  }
  return {
    dir,
    fake,
    key,
    args,
    uidRange,
    query: <T>(sql: string, ...params: unknown[]) => {
      const db = new Database(join(dir, 'var', 'warren.db'), { readonly: true });
      try {
        return db.prepare(sql).all(...params) as T[];
      } finally {
        db.close();
      }
    },
    remove: async () => {
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every file under `dir` (not following links) whose bytes contain `needle`. */
export function filesHolding(dir: string, needle: string): string[] {
  const found: string[] = [];
  const visit = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.isFile() && readFileSync(full).includes(needle)) found.push(full);
    }
  };
  visit(dir);
  return found;
}

/** The environment or command line of every process whose real uid lies in `[min, max]` that holds `needle`. */
export function processesHolding(range: string, needle: string): { pid: number; where: string }[] {
  const [min, max] = range.split('-').map(Number) as [number, number];
  const found: { pid: number; where: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      if (uid < min || uid > max) continue;
      for (const file of ['environ', 'cmdline']) {
        if (readFileSync(`/proc/${entry}/${file}`).includes(needle)) found.push({ pid: Number(entry), where: file });
      }
    } catch {
      // gone while we looked
    }
  }
  return found;
}

/** How many processes run with a real uid in `[min, max]` now. */
export function processCount(range: string): number {
  const [min, max] = range.split('-').map(Number) as [number, number];
  let n = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      if (uid >= min && uid <= max) n += 1;
    } catch {
      // gone
    }
  }
  return n;
}
