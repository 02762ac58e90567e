import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTemplates, parseTemplate, TemplateError } from '../src/templates.js';

const repoAgents = join(import.meta.dirname, '..', '..', '..', 'agents');

const valid = `name: shell
description: Runs commands.
capabilities: [shell]
runtime:
  kind: shell
  timeout: 90s
resources:
  memory: 256MiB
  pids: 64
maxInstances: 3
lifecycle: sleep
`;

describe('parseTemplate', () => {
  it('resolves units to bytes and milliseconds and fills defaults', () => {
    const t = parseTemplate(valid, 'agents/shell.yaml');
    expect(t.taskTimeoutMs).toBe(90_000);
    expect(t.resources.memoryMaxBytes).toBe(256 * 1024 * 1024);
    expect(t.resources.pidsMax).toBe(64);
    expect(t.resources.tmpfsBytes).toBe(64 * 1024 * 1024);
    expect(t.maxInstances).toBe(3);
    expect(t.wipPerInstance).toBe(1);
    expect(t.lifecycle).toBe('sleep');
    expect(t.runtime).toEqual({ kind: 'shell' });
  });

  it('names an unknown key and its line', () => {
    const text = valid.replace('maxInstances: 3', 'maxInstances: 3\nmaxInstnaces: 4');
    expect(() => parseTemplate(text, 'agents/shell.yaml')).toThrow(
      /^agents\/shell\.yaml:11: 'maxInstnaces' is not a template key/,
    );
  });

  it('names an unknown nested key with its dotted path', () => {
    const text = valid.replace('  pids: 64', '  pids: 64\n  swap: 1GiB');
    const error = (() => {
      try {
        parseTemplate(text, 'a.yaml');
      } catch (e) {
        return e as TemplateError;
      }
      throw new Error('expected an error');
    })();
    expect(error).toBeInstanceOf(TemplateError);
    expect(error.key).toBe('resources.swap');
    expect(error.line).toBe(10);
    expect(error.code).toBe('WARREN_TEMPLATE_INVALID');
  });

  it('reports a bad unit at the line of its key', () => {
    const text = valid.replace('memory: 256MiB', 'memory: lots');
    expect(() => parseTemplate(text, 'a.yaml')).toThrow(/^a\.yaml:8: 'resources\.memory' 'lots' is not a size/);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(() => parseTemplate('name: shell\ncapabilities: [shell\n', 'a.yaml')).toThrow(/^a\.yaml:\d+: is not valid YAML/);
  });

  it('takes a warm pool of at most maxInstances, and none for sleeping agents', () => {
    const autodelete = valid.replace('lifecycle: sleep', 'lifecycle: autodelete\nwarmPool: 2');
    expect(parseTemplate(autodelete, 'a.yaml').warmPool).toBe(2);
    expect(parseTemplate(valid, 'a.yaml').warmPool).toBe(0);
    expect(() => parseTemplate(autodelete.replace('warmPool: 2', 'warmPool: 4'), 'a.yaml')).toThrow(
      /^a\.yaml:12: 'warmPool' is 4, more than maxInstances \(3\)/,
    );
    expect(() => parseTemplate(valid.replace('lifecycle: sleep', 'lifecycle: sleep\nwarmPool: 1'), 'a.yaml')).toThrow(
      /^a\.yaml:12: 'warmPool' cannot be used with lifecycle 'sleep'/,
    );
  });

  it('rejects a wrong type, naming the key', () => {
    expect(() => parseTemplate(valid.replace('maxInstances: 3', 'maxInstances: three'), 'a.yaml')).toThrow(
      /^a\.yaml:10: 'maxInstances'/,
    );
  });
});

describe('loadTemplates', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('loads the repository templates without errors', async () => {
    const set = await loadTemplates(repoAgents);
    expect(set.errors.map((e) => e.message)).toEqual([]);
    expect([...set.templates.keys()].sort()).toEqual(['reporter', 'shell']);
  });

  it('keeps the valid templates when one file is broken, and refuses duplicate names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-templates-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'a.yaml'), valid);
    writeFileSync(join(dir, 'b.yaml'), valid);
    writeFileSync(join(dir, 'c.yaml'), 'name: broken\ncapabilities: []\nruntime: {kind: shell}\n');
    const set = await loadTemplates(dir);
    expect([...set.templates.keys()]).toEqual(['shell']);
    expect(set.errors.map((e) => e.message)).toEqual([
      "b.yaml:1: 'name' 'shell' is already defined by a.yaml",
      expect.stringMatching(/^c\.yaml:2: 'capabilities'/),
    ]);
  });
});
