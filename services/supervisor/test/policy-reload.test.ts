import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '@warren/audit';
import type { Logger } from '@warren/core';
import { loadPolicy } from '@warren/policy';
import { watchPolicy, type PolicyReloader } from '../src/policy-reload.js';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');

const dirs: string[] = [];
const reloaders: PolicyReloader[] = [];
afterEach(async () => {
  for (const r of reloaders.splice(0)) await r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Line {
  readonly level: string;
  readonly fields: Record<string, unknown>;
  readonly msg: string | undefined;
}

/** A logger that keeps every line. */
function recordingLogger(lines: Line[]): Logger {
  const at =
    (level: string) =>
    (fields: object, msg?: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, msg });
    };
  const logger: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

/** Polls `check` every 20 ms until it holds; fails naming `what` after a generous deadline. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Writes `text` to `path` as editors do: a new file renamed over the old one. */
function saveByRename(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

async function setup(options: { rescanIntervalMs?: number; debounceMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-policy-reload-'));
  dirs.push(dir);
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  const shipped = readFileSync(join(repoPolicies, 'policy.csv'), 'utf8');
  writeFileSync(modelPath, readFileSync(join(repoPolicies, 'model.conf'), 'utf8'));
  writeFileSync(policyPath, shipped);
  const policy = await loadPolicy({ modelPath, policyPath });
  policy.addRoleForSubject('shell-1', 'template:shell');
  const rows: AuditEntry[] = [];
  const lines: Line[] = [];
  let reloads = 0;
  const reloader = await watchPolicy({
    policy,
    modelPath,
    policyPath,
    emit: (entry) => rows.push(entry),
    logger: recordingLogger(lines),
    debounceMs: options.debounceMs ?? 50,
    // Long by default, so that these tests see fs.watch at work; one test relies on the rescan alone.
    rescanIntervalMs: options.rescanIntervalMs ?? 600_000,
    onReloaded: () => (reloads += 1),
  });
  reloaders.push(reloader);
  return { policy, reloader, rows, lines, modelPath, policyPath, shipped, reloads: () => reloads };
}

const SECRET_DENY = 'p, role:worker, task:secret, assign, deny';

describe('policy reload while running', () => {
  it('applies a changed policy.csv saved by rename, audits policy.reloaded with the digest, and calls onReloaded', async () => {
    const { policy, reloader, rows, policyPath, shipped, reloads } = await setup();
    const before = reloader.digest;
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(true);
    saveByRename(policyPath, `${shipped}\n${SECRET_DENY}\n`);
    await waitFor('the policy.reloaded row', () => rows.some((r) => r.action === 'policy.reloaded'));
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(false);
    expect(policy.explain('shell-1', 'task:secret', 'assign').rule).toBe(SECRET_DENY);
    // The in-memory role of the running agent survives.
    expect(policy.enforce('shell-1', 'task:other', 'assign')).toBe(true);
    expect(reloader.digest).not.toBe(before);
    expect(reloader.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rows).toEqual([
      { actor: 'supervisor', action: 'policy.reloaded', object: 'policy', details: expect.objectContaining({ digest: reloader.digest, policyPath, fastPath: 'compiled' }) },
    ]);
    expect(reloads()).toBe(1);
  });

  it('keeps the last good policy when a file is broken, reports file and line, and applies the fixed file', async () => {
    const { policy, reloader, rows, lines, policyPath, shipped } = await setup();
    // A good change first, so that "the last good policy" is not the one loaded at start.
    saveByRename(policyPath, `${shipped}\n${SECRET_DENY}\n`);
    await waitFor('the first policy.reloaded row', () => rows.filter((r) => r.action === 'policy.reloaded').length === 1);

    const broken = `${shipped}\n${SECRET_DENY}\np, role:worker, task:*\n`;
    const brokenLine = broken.split('\n').indexOf('p, role:worker, task:*') + 1;
    saveByRename(policyPath, broken);
    await waitFor('the policy.reload_failed row', () => rows.some((r) => r.action === 'policy.reload_failed'));
    const failed = rows.find((r) => r.action === 'policy.reload_failed')!;
    expect(failed).toMatchObject({
      actor: 'supervisor',
      object: 'policy',
      details: { file: policyPath, line: brokenLine, message: `${policyPath}:${brokenLine}: 'p' needs 4 fields (sub, obj, act, eft), got 2` },
    });
    const logged = lines.find((l) => l.msg === 'policy change refused; the last good policy stays in force');
    expect(logged).toMatchObject({ level: 'error', fields: { file: policyPath, line: brokenLine } });
    // The last good policy (with the deny) is still in force.
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(false);
    expect(policy.enforce('shell-1', 'task:other', 'assign')).toBe(true);

    saveByRename(policyPath, shipped);
    await waitFor('the second policy.reloaded row', () => rows.filter((r) => r.action === 'policy.reloaded').length === 2);
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(true);
    expect(rows.map((r) => r.action)).toEqual(['policy.reloaded', 'policy.reload_failed', 'policy.reloaded']);
    await reloader.settled();
  });

  it('reports a broken model.conf at its line, and writes nothing for a save that changes nothing', async () => {
    const { policy, reloader, rows, modelPath, policyPath, shipped } = await setup();
    const model = readFileSync(modelPath, 'utf8');
    const broken = model.replace('keyMatch(r.obj', 'fooMatch(r.obj');
    const line = broken.split('\n').findIndex((l) => l.startsWith('m = ')) + 1;
    saveByRename(modelPath, broken);
    await waitFor('the policy.reload_failed row', () => rows.some((r) => r.action === 'policy.reload_failed'));
    expect(rows[0]!.details).toMatchObject({ file: modelPath, line, message: expect.stringContaining("unknown function 'fooMatch'") });
    expect(policy.enforce('shell-1', 'task:a', 'assign')).toBe(true);
    saveByRename(modelPath, model);
    await waitFor('the policy.reloaded row', () => rows.some((r) => r.action === 'policy.reloaded'));
    // Saving the same content again: an event, the same digest, no reload and no row.
    saveByRename(policyPath, shipped);
    await new Promise((r) => setTimeout(r, 100));
    await reloader.settled();
    expect(rows.map((r) => r.action)).toEqual(['policy.reload_failed', 'policy.reloaded']);
  });

  it('finds a change by its periodic comparison when no watch event comes', async () => {
    // Watch events wait ten minutes before they lead to a check: only the rescan can see the change.
    const { policy, rows, policyPath, shipped, reloader } = await setup({ rescanIntervalMs: 100, debounceMs: 600_000 });
    writeFileSync(policyPath, `${shipped}\n${SECRET_DENY}\n`);
    await waitFor('the policy.reloaded row', () => rows.some((r) => r.action === 'policy.reloaded'));
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(false);
    await reloader.close();
  });

  it('stops on close, twice without harm, and reloads nothing after', async () => {
    const { policy, reloader, rows, policyPath, shipped } = await setup({ rescanIntervalMs: 20 });
    await reloader.close();
    await reloader.close();
    await reloader[Symbol.asyncDispose]();
    writeFileSync(policyPath, `${shipped}\n${SECRET_DENY}\n`);
    await new Promise((r) => setTimeout(r, 200));
    expect(rows).toEqual([]);
    expect(policy.enforce('shell-1', 'task:secret', 'assign')).toBe(true);
  });

  it('rejects a negative debounce and a rescan interval below 1 ms', async () => {
    const { policy, modelPath, policyPath } = await setup();
    const base = { policy, modelPath, policyPath, emit: () => {}, logger: recordingLogger([]) };
    await expect(watchPolicy({ ...base, debounceMs: -1 })).rejects.toThrow(RangeError);
    await expect(watchPolicy({ ...base, rescanIntervalMs: 0 })).rejects.toThrow(/rescanIntervalMs must be a number ≥ 1/);
  });
});
