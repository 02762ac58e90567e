import { describe, expect, it } from 'vitest';
import { ConfigError, formatBytes, parseBytes, parseDurationMs } from '@warren/core';

describe('parseDurationMs', () => {
  it('reads each unit and bare numbers as milliseconds', () => {
    expect(parseDurationMs('250ms', 'x')).toBe(250);
    expect(parseDurationMs('30s', 'x')).toBe(30_000);
    expect(parseDurationMs('1.5h', 'x')).toBe(5_400_000);
    expect(parseDurationMs(42, 'x')).toBe(42);
    expect(parseDurationMs('7', 'x')).toBe(7);
  });
  it('rejects text that is not a duration and names where it came from', () => {
    expect(() => parseDurationMs('soon', 'agents/a.yaml: runtime.timeout')).toThrow(
      /agents\/a\.yaml: runtime\.timeout: 'soon' is not a duration/,
    );
    expect(() => parseDurationMs(-1, 'x')).toThrow(ConfigError);
  });
});

describe('parseBytes', () => {
  it('distinguishes binary and decimal suffixes', () => {
    expect(parseBytes('512MiB', 'x')).toBe(512 * 1024 * 1024);
    expect(parseBytes('1Gi', 'x')).toBe(1024 ** 3);
    expect(parseBytes('100MB', 'x')).toBe(100_000_000);
    expect(parseBytes(4096, 'x')).toBe(4096);
  });
  it('rejects unknown suffixes', () => {
    expect(() => parseBytes('12 parsecs', 'f: memory')).toThrow(/f: memory: '12 parsecs' is not a size/);
  });
});

describe('formatBytes', () => {
  it('uses the largest binary unit reached, with one decimal when not whole', () => {
    expect(formatBytes(2 ** 30)).toBe('1 GiB');
    expect(formatBytes(512 * 2 ** 20)).toBe('512 MiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatBytes(100)).toBe('100 bytes');
    expect(formatBytes(0)).toBe('0 bytes');
  });
});
