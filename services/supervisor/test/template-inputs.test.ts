import { describe, expect, it } from 'vitest';
import { parseTemplate } from '../src/templates.js';

const base = (resources: string, runtime = 'runtime: { kind: shell }') => `name: bad\ncapabilities: [bad]\n${runtime}\n${resources}\n`;

describe('template sizes and programs checked at load (attack cases 4, 5)', () => {
  it('refuses memory: 1e30 given as a YAML number, at its line', () => {
    expect(() => parseTemplate(base('resources: { memory: 1e30 }'), 'agents/bad.yaml')).toThrow(
      /^agents\/bad\.yaml:4: 'resources\.memory' size 1e\+30 must be a whole number of bytes/,
    );
  });

  it('refuses a fractional byte count and one below the sandbox minimum, at the line', () => {
    expect(() => parseTemplate(base('resources:\n  memory: 1048576.5'), 'agents/bad.yaml')).toThrow(/^agents\/bad\.yaml:5: 'resources\.memory' size 1048576\.5 must be a whole number/);
    expect(() => parseTemplate(base('resources:\n  memory: 1024'), 'agents/bad.yaml')).toThrow(/^agents\/bad\.yaml:5: 'resources\.memory' size 1024 must be between 4194304 and 9007199254740991 bytes/);
    expect(() => parseTemplate(base('resources:\n  home: 1MiB'), 'agents/bad.yaml')).toThrow(/^agents\/bad\.yaml:5: 'resources\.home' size 1MiB must be between 4194304 and/);
    expect(() => parseTemplate(base('resources:\n  tmp: 0'), 'agents/bad.yaml')).toThrow(/^agents\/bad\.yaml:5: 'resources\.tmp' size 0 must be between 1 and/);
    expect(() => parseTemplate(base('resources:\n  fileSize: 99999999999GiB'), 'agents/bad.yaml')).toThrow(/^agents\/bad\.yaml:5: 'resources\.fileSize' size 99999999999GiB must be between/);
  });

  it('accepts a whole byte count given as a number', () => {
    expect(parseTemplate(base('resources: { memory: 8388608 }'), 'agents/ok.yaml').resources.memoryMaxBytes).toBe(8_388_608);
  });

  it('refuses an exec runtime whose program is a relative path, at its line', () => {
    const text = base('', 'runtime:\n  kind: exec\n  command:\n    - bin/report.mjs');
    expect(() => parseTemplate(text, 'agents/bad.yaml')).toThrow(
      /^agents\/bad\.yaml:6: 'runtime\.command\.0' 'bin\/report\.mjs' must be an absolute path inside the sandbox/,
    );
    const ok = parseTemplate(base('', 'runtime: { kind: exec, command: [/opt/warren/agents/bin/report.mjs] }'), 'agents/ok.yaml');
    expect(ok.runtime).toEqual({ kind: 'exec', command: ['/opt/warren/agents/bin/report.mjs'] });
  });
});
