import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { describeProcessTree } from './helpers.js';

describe('describeProcessTree (the slow-close report of the tests)', () => {
  it('lists a process and its children with their kernel states', async () => {
    const parent = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore', detached: true });
    try {
      let report = '';
      const child = /^ {4}\d+ [A-Z] wchan=\S+ sleep 30/m;
      for (let i = 0; i < 500 && !child.test(report); i++) {
        report = describeProcessTree(parent.pid!);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(report).toMatch(new RegExp(`^  ${parent.pid} [A-Z] wchan=\\S+ /bin/sh -c sleep 30 & wait`, 'm'));
      expect(report).toMatch(child);
    } finally {
      const exited = once(parent, 'exit');
      process.kill(-parent.pid!, 'SIGKILL'); // its own process group: the shell and its sleep
      await exited;
    }
  });
});
