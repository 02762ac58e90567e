import { spawn } from 'node:child_process';
import { existsSync, lstatSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closeWriteEnds, FifoPool, openTaskPipes } from '../src/pipes.js';

const pools: FifoPool[] = [];
afterEach(() => {
  for (const pool of pools.splice(0)) pool.close();
});

/** A pool whose background runs are counted (they make the FIFOs with the real `mkfifo`). */
function countingPool(batch: number): { pool: FifoPool; runs: string[][]; settled: () => Promise<void> } {
  const runs: string[][] = [];
  const pending: Promise<boolean>[] = [];
  const pool = new FifoPool(batch, (paths) => {
    runs.push(paths);
    const made = new Promise<boolean>((resolve) => {
      const child = spawn('mkfifo', ['-m', '600', ...paths], { stdio: 'ignore' });
      child.once('exit', (code) => resolve(code === 0));
    });
    pending.push(made);
    return made;
  });
  pools.push(pool);
  return { pool, runs, settled: async () => void (await Promise.all(pending)) };
}

describe('FifoPool', () => {
  it('makes FIFOs ahead in the background, so that later tasks take them without a blocking mkfifo', async () => {
    const { pool, runs, settled } = countingPool(8);
    const first = pool.take(2);
    expect(first).toHaveLength(2);
    // The first take had none ready (made at once), and started one background run of a batch.
    expect(runs).toHaveLength(1);
    expect(runs[0]).toHaveLength(8);
    for (const path of first!) expect(lstatSync(path).isFIFO()).toBe(true);
    await settled();
    expect(pool.stock).toBe(8);
    // Taken from the stock: the same paths the background run made, no new run above half a batch.
    const second = pool.take(2);
    expect(second).toEqual(runs[0]!.slice(0, 2));
    expect(runs).toHaveLength(1);
    const third = pool.take(3);
    // 3 left, under half a batch: the next background run.
    expect(pool.stock).toBe(3);
    expect(runs).toHaveLength(2);
    await settled();
    expect(pool.stock).toBe(11);
    // Every path is handed out once.
    const all = [...first!, ...second!, ...third!, ...pool.take(11)!];
    expect(new Set(all).size).toBe(all.length);
  });

  it('opens each FIFO once and unlinks it: the pipes carry a child\'s output to its end', async () => {
    const { pool, settled } = countingPool(4);
    pool.take(0);
    await settled();
    const paths = [...(pool as unknown as { ready: string[] }).ready];
    const pipes = openTaskPipes(2, pool);
    expect(pipes).toHaveLength(2);
    for (const path of paths.slice(0, 2)) expect(existsSync(path)).toBe(false);
    const child = spawn('/bin/sh', ['-c', 'echo out; echo err >&2; test -p /dev/stdout && echo pipe'], { stdio: ['ignore', pipes![0]!.writeFd, pipes![1]!.writeFd] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    closeWriteEnds(pipes!);
    const read = (i: number) =>
      new Promise<string>((resolve) => {
        let text = '';
        pipes![i]!.reader.on('data', (chunk: Buffer) => (text += chunk.toString()));
        pipes![i]!.reader.once('close', () => resolve(text));
      });
    const [out, err] = await Promise.all([read(0), read(1)]);
    await exited;
    expect(out).toBe('out\npipe\n');
    expect(err).toBe('err\n');
  });

  it('refuses a path that is not a FIFO any more (the caller falls back to socket pairs)', async () => {
    const { pool, settled } = countingPool(4);
    pool.take(0);
    await settled();
    const { ready } = pool as unknown as { ready: string[] };
    // A path replaced by a regular file (e.g. by a task of the same agent).
    rmSync(ready[0]!);
    writeFileSync(ready[0]!, 'x');
    const victim = ready[0]!;
    expect(openTaskPipes(2, pool)).toBeNull();
    expect(existsSync(victim)).toBe(false);
  });

  it('says so when no FIFO can be made', () => {
    const pool = new FifoPool(4, () => Promise.resolve(false));
    pools.push(pool);
    (pool as unknown as { dir: null }).dir = null;
    expect(pool.take(2)).toBeNull();
    expect(openTaskPipes(2, pool)).toBeNull();
  });
});
