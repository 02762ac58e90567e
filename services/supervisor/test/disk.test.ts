import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskReserve, formatBytes, homeUsage, parseDiskReserve, reserveBytes } from '../src/disk.js';
import { parseTemplate } from '../src/templates.js';

const template = (resources: string) =>
  `name: shell\ncapabilities: [shell]\nruntime:\n  kind: shell\nresources:\n  memory: 256MiB\n${resources}`;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('home limit of a template', () => {
  it('is 1 GiB by default and caps RLIMIT_FSIZE', () => {
    const t = parseTemplate(template(''), 'agents/shell.yaml');
    expect(t.homeLimitBytes).toBe(1024 ** 3);
    expect(t.resources.fsizeBytes).toBe(256 * 1024 ** 2);
    const small = parseTemplate(template('  homeLimit: 64MiB\n'), 'agents/shell.yaml');
    expect(small.homeLimitBytes).toBe(64 * 1024 ** 2);
    expect(small.resources.fsizeBytes).toBe(64 * 1024 ** 2);
  });

  it('names a bad size and its line', () => {
    expect(() => parseTemplate(template('  homeLimit: lots\n'), 'a.yaml')).toThrow(/^a\.yaml:7: 'resources\.homeLimit' 'lots' is not a size/);
  });
});

describe('disk reserve', () => {
  it('parses a size, a share, or both (the smaller counts)', () => {
    expect(parseDiskReserve('256MiB', 'x')).toEqual({ bytes: 256 * 1024 ** 2, percent: undefined });
    expect(reserveBytes(parseDiskReserve('5%', 'x'), 1000 * 1024 ** 2)).toBe(50 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('256MiB,5%', 'x'), 300 * 1024 ** 2)).toBe(15 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('256MiB,5%', 'x'), 100 * 1024 ** 3)).toBe(256 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('0', 'x'), 100 * 1024 ** 3)).toBe(0);
    expect(() => parseDiskReserve('80%', "option 'disk-reserve'")).toThrow(/option 'disk-reserve'.*over 50 %/);
    expect(() => parseDiskReserve('lots', "option 'disk-reserve'")).toThrow(/option 'disk-reserve'.*not a size/);
  });

  it('reports a change once', () => {
    const reserve = new DiskReserve(tmpdir(), { bytes: Number.MAX_SAFE_INTEGER, percent: undefined }, 0);
    expect(reserve.check(1)).toMatchObject({ low: true, changed: true });
    expect(reserve.check(2)).toMatchObject({ low: true, changed: false });
  });
});

describe('homeUsage', () => {
  it('sums allocated blocks, not apparent sizes, and stops past a bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'work', 't1'), { recursive: true });
    writeFileSync(join(dir, 'work', 't1', 'data'), Buffer.alloc(1024 * 1024, 1));
    const full = await homeUsage(dir);
    expect(full.complete).toBe(true);
    expect(full.bytes).toBeGreaterThanOrEqual(1024 * 1024);
    const bounded = await homeUsage(dir, 200_000, 1024);
    expect(bounded.complete).toBe(false);
    expect(formatBytes(64 * 1024 ** 2)).toBe('64 MiB');
    expect(formatBytes(1024 ** 3)).toBe('1 GiB');
  });
});
