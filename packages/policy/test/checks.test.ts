import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { calledFunctions, loadPolicy, PolicyLoadError } from '@warren/policy';
import type { Logger } from '@warren/core';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Copies of the repository's policy files, edited by `edit`, in a temp dir. */
function policies(edit: { model?: (text: string) => string; policy?: (text: string) => string }) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-policy-checks-'));
  dirs.push(dir);
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  writeFileSync(modelPath, (edit.model ?? ((t) => t))(readFileSync(join(repoPolicies, 'model.conf'), 'utf8')));
  writeFileSync(policyPath, (edit.policy ?? ((t) => t))(readFileSync(join(repoPolicies, 'policy.csv'), 'utf8')));
  return { modelPath, policyPath };
}

/** A logger that keeps its warn lines. */
function recordingLogger(warnings: string[]): Logger {
  const logger = {
    child: () => logger,
    info: () => undefined,
    debug: () => undefined,
    trace: () => undefined,
    error: () => undefined,
    fatal: () => undefined,
    warn: (_: unknown, message: string) => void warnings.push(message),
  };
  return logger;
}

describe('matcher functions checked at load (attack case 18)', () => {
  it('lists the functions a matcher calls, not methods, operators or text in quotes', () => {
    expect(calledFunctions('g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")')).toEqual(['g', 'keyMatch']);
    expect(calledFunctions('r.obj.startsWith("x(") && r.sub in ("a", "b") && fooMatch (r.obj, p.obj)')).toEqual(['fooMatch']);
  });

  it('refuses an unknown function at the matcher line, naming the known ones', async () => {
    const { modelPath, policyPath } = policies({ model: (t) => t.replace('keyMatch(r.obj', 'fooMatch(r.obj') });
    const line = readFileSync(modelPath, 'utf8').split('\n').findIndex((l) => l.startsWith('m = ')) + 1;
    const error = await loadPolicy({ modelPath, policyPath }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyLoadError);
    expect((error as PolicyLoadError).line).toBe(line);
    expect((error as PolicyLoadError).message).toMatch(new RegExp(`^${modelPath}:${line}: unknown function 'fooMatch' in the matcher \\(known: .*\\bg\\b.*keyMatch.*\\)$`));
  });

  it('accepts every Casbin built-in and each role definition', async () => {
    const { modelPath, policyPath } = policies({
      model: (t) => t.replace('keyMatch(r.obj, p.obj)', '(keyMatch(r.obj, p.obj) || keyMatch2(r.obj, p.obj) || regexMatch(r.obj, p.obj) || globMatch(r.obj, p.obj))'),
    });
    const policy = await loadPolicy({ modelPath, policyPath });
    policy.addRoleForSubject('shell-1', 'template:shell');
    expect(policy.enforce('shell-1', 'task:t1', 'assign')).toBe(true);
  });
});

describe('roles that give nothing (attack case 20)', () => {
  it('warns with policy.csv:line about a role no p line names and that is a member of nothing', async () => {
    const { modelPath, policyPath } = policies({ policy: (t) => t.replace(/^g, template:shell, role:worker$/m, 'g, template:shell, role:wrker') });
    const line = readFileSync(policyPath, 'utf8').split('\n').indexOf('g, template:shell, role:wrker') + 1;
    const warnings: string[] = [];
    const policy = await loadPolicy({ modelPath, policyPath, logger: recordingLogger(warnings) });
    const expected = `${policyPath}:${line}: role:wrker has no permissions: no 'p' line names it and no 'g' line makes it a member of a role`;
    expect(policy.warnings.map((w) => w.message)).toEqual([expected]);
    expect(warnings).toEqual([expected]);
  });

  it('has nothing to say about the repository policy', async () => {
    const { modelPath, policyPath } = policies({});
    expect((await loadPolicy({ modelPath, policyPath })).warnings).toEqual([]);
  });
});
