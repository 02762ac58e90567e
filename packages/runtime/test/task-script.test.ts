import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { taskScript } from '../src/direct.js';

// The script a waiting sandbox's shell reads: run here by the host's /bin/sh with an environment
// of its own, it must leave the task's process exactly the request's environment and argv.

const dir = mkdtempSync(join(tmpdir(), 'warren-task-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SHELL_ENV = { HOME: '/home/agent', PATH: '/usr/bin:/bin', WARREN_AGENT: 'a', LANG: 'C.UTF-8' };
const DUMP = ['/usr/bin/perl', '-e', 'print join("\\0", map { "$_=$ENV{$_}" } sort keys %ENV), "\\n--\\n", join("\\0", @ARGV), "\\n--\\n", `pwd`', '--'];

/** Feeds `script` to `/bin/sh -s` started with SHELL_ENV; returns what DUMP printed: the environment, the arguments and the working directory. */
function runScript(script: string): Promise<{ env: Record<string, string>; args: string[]; cwd: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-s'], { env: SHELL_ENV, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('close', (code) => {
      const [env = '', args = '', cwd = ''] = out.split('\n--\n');
      resolve({
        env: Object.fromEntries(env.split('\0').filter((e) => e !== '').map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
        args: args.split('\0'),
        cwd: cwd.trim(),
        code,
      });
    });
    child.stdin.end(script);
  });
}

const request = {
  argv: [...DUMP, "it's", '$HOME `id`', 'two\nlines'],
  env: { PATH: '/bin', IFS: 'x', A_B: 'va"l\'ue $x\nnext', PWD: '/elsewhere', HOME: '/home/task' },
  cwd: dir,
};

describe('taskScript', () => {
  it.each([
    ['the shell sets the environment (shell env known)', Object.keys(SHELL_ENV)],
    ['env -i sets it (shell env not known)', null],
  ] as const)('gives the process exactly the request environment, argv and cwd: %s', async (_, shellEnv) => {
    const script = taskScript(request, shellEnv);
    expect(script).not.toBeNull();
    const seen = await runScript(script!);
    expect(seen.code).toBe(0);
    expect(seen.env).toEqual(request.env);
    expect(seen.args).toEqual(["it's", '$HOME `id`', 'two\nlines']);
    expect(seen.cwd).toBe(realpathSync(dir));
  });

  it('execs no /usr/bin/env under dash when the names allow it, and falls back to it otherwise', () => {
    const dash = basename(realpathSync('/bin/sh')) === 'dash';
    expect(dash, 'this host runs dash as /bin/sh').toBe(true);
    expect(taskScript(request, Object.keys(SHELL_ENV))).not.toContain('/usr/bin/env');
    // Unknown shell environment, a relative program, a name the shell cannot export: env -i.
    expect(taskScript(request, null)).toContain('exec /usr/bin/env -i ');
    expect(taskScript({ ...request, argv: ['perl', '-e', '1'] }, Object.keys(SHELL_ENV))).toContain('exec /usr/bin/env -i ');
    expect(taskScript({ ...request, env: { 'A-B': '1' } }, Object.keys(SHELL_ENV))).toContain('exec /usr/bin/env -i ');
    expect(taskScript(request, ['X.Y'])).toContain('exec /usr/bin/env -i ');
  });

  it('runs a name the shell cannot export through env -i, exactly', async () => {
    const seen = await runScript(taskScript({ ...request, env: { 'A-B': '1', C: '2' } }, Object.keys(SHELL_ENV))!);
    expect(seen.env).toEqual({ 'A-B': '1', C: '2' });
  });

  it('refuses what env cannot carry', () => {
    expect(taskScript({ ...request, argv: [] }, null)).toBeNull();
    expect(taskScript({ ...request, argv: ['A=b'] }, null)).toBeNull();
    expect(taskScript({ ...request, env: { '': 'x' } }, null)).toBeNull();
    expect(taskScript({ ...request, env: { X: 'a\0b' } }, Object.keys(SHELL_ENV))).toBeNull();
  });

  it('exits 126 when the working directory is missing, 127 when the program is', async () => {
    expect((await runScript(taskScript({ ...request, cwd: join(dir, 'missing') }, Object.keys(SHELL_ENV))!)).code).toBe(126);
    expect((await runScript(taskScript({ ...request, argv: ['/nonexistent/program'] }, Object.keys(SHELL_ENV))!)).code).toBe(127);
    expect((await runScript(taskScript({ ...request, argv: ['/nonexistent/program'] }, null)!)).code).toBe(127);
  });
});
