import { fstatSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnImplementation, spawnProcess } from '@warren/spawn';
import { closeWriteEnd, openOutputPipe } from '../src/fifos.js';

const OWNER = { uid: 65534, gid: 65534 };

describe('output pipes', () => {
  it('are pipe2 pipes given to the sandbox\'s account, which it can reopen through /proc', async () => {
    expect(spawnImplementation()).toBe('posix_spawn');
    const pipe = openOutputPipe(OWNER);
    expect(pipe).not.toBeNull();
    // Anonymous: no FIFO path in a pool directory, no mkfifo run.
    expect(readlinkSync(`/proc/self/fd/${pipe!.writeFd}`)).toMatch(/^pipe:\[\d+\]$/);
    const stat = fstatSync(pipe!.writeFd);
    expect(stat.isFIFO()).toBe(true);
    expect({ uid: stat.uid, gid: stat.gid }).toEqual(OWNER);

    let read = '';
    pipe!.reader.on('data', (chunk: Buffer) => (read += chunk.toString()));
    const closed = new Promise<void>((resolve) => pipe!.reader.once('close', () => resolve()));
    // As the account (not root): /dev/stdout is /proc/self/fd/1, reopened with the inode's mode.
    const child = spawnProcess(
      '/usr/bin/setpriv',
      [`--reuid=${OWNER.uid}`, `--regid=${OWNER.gid}`, '--clear-groups', '/bin/sh', '-c', 'echo reopened > /dev/stdout'],
      { env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', pipe!.writeFd, 'ignore'] },
    );
    closeWriteEnd(pipe!);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    await closed;
    expect(code).toBe(0);
    expect(read).toBe('reopened\n');
  });
});
