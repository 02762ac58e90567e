import { readFileSync, statSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSandbox, type Sandbox } from '@warren/sandbox';
import { cleanup, makeSpec, requireSandboxHost, track } from './helpers.js';

beforeAll(requireSandboxHost);
afterEach(cleanup);

const MiB = 1024 * 1024;
/** Upper bound on the test process's RSS growth while a flood passes through it. */
const RSS_GROWTH_MAX = 128 * MiB;

/** Waits for the sandbox's end while sampling this process's RSS; returns the peak growth in bytes. */
async function peakRssGrowth(sandbox: Sandbox): Promise<number> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage().rss) - before;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

describe('output floods', () => {
  it('streams 1 GiB of output through a 1 MiB log: memory stays bounded and every byte is kept or counted', async () => {
    const total = 1024 * MiB;
    const spec = makeSpec(['/bin/sh', '-c', `head -c ${total} /dev/zero`], { logMaxBytes: MiB });
    const sandbox = track(await spawnSandbox(spec));
    const growth = await peakRssGrowth(sandbox);
    expect(growth).toBeLessThan(RSS_GROWTH_MAX);
    const current = sizeOf(spec.logPath);
    const previous = sizeOf(`${spec.logPath}.1`);
    expect(current).toBeLessThanOrEqual(MiB);
    expect(previous).toBeLessThanOrEqual(MiB);
    expect(current + previous + sandbox.logDroppedBytes).toBe(total);
  }, 60_000);

  it('handles a 100 MB line without gathering it: the tail and what follows are kept, the rest counted', async () => {
    const line = 100_000_000;
    const spec = makeSpec(['/bin/sh', '-c', `head -c ${line} /dev/zero | tr '\\0' a; echo END`], { logMaxBytes: MiB });
    const sandbox = track(await spawnSandbox(spec));
    const growth = await peakRssGrowth(sandbox);
    expect(growth).toBeLessThan(RSS_GROWTH_MAX);
    const current = readFileSync(spec.logPath, 'latin1');
    expect(current.length).toBeLessThanOrEqual(MiB);
    expect(current.endsWith('aaaaEND\n')).toBe(true);
    expect(current.length + sizeOf(`${spec.logPath}.1`) + sandbox.logDroppedBytes).toBe(line + 4);
  }, 60_000);
});
