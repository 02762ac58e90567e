import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { describeProcessTree } from './helpers.js';

describe('describeProcessTree (the slow-close report of the tests)', () => {
  it('lists a process and its children with their kernel states', async () => {
    const parent = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore', detached: true });
    try {
      let report = '';
      for (let i = 0; i < 100 && !/sleep 30/.test(report); i++) {
        report = describeProcessTree(parent.pid!);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(report).toMatch(new RegExp(`^  ${parent.pid} S wchan=\\S+ /bin/sh -c sleep 30 & wait`, 'm'));
      expect(report).toMatch(/^ {4}\d+ S wchan=\S+ sleep 30/m);
    } finally {
      const exited = once(parent, 'exit');
      process.kill(-parent.pid!, 'SIGKILL'); // its own process group: the shell and its sleep
      await exited;
    }
  });
});
