import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openAudit } from '@warren/audit';
import { openSecretStore, secretsKeyPath } from '@warren/secrets';
import { openDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';

const repo = join(import.meta.dirname, '..', '..', '..');
const cli = join(repo, 'services', 'supervisor', 'bin', 'warren.js');

beforeAll(() => {
  if (!existsSync(join(repo, 'services', 'supervisor', 'dist', 'cli.js'))) throw new Error('these tests run the built CLI: run npm run build first');
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `warren <args>` in `cwd` with `input` written to its standard input and then closed (killed
 * and failed after 120 s). `command` replaces the program and arguments (to run it under `script`),
 * in which case standard input stays open until the child ends.
 */
function run(cwd: string, args: readonly string[], input: string | Buffer | undefined, env: NodeJS.ProcessEnv = {}, command?: readonly string[]): Promise<Run> {
  const [file, ...argv] = command ?? [process.execPath, cli, ...args];
  const child = spawn(file!, argv, { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, WARREN_LOG_LEVEL: 'trace', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => {}); // the child may exit before reading its input
  if (input !== undefined) child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!child.stdin.destroyed) child.stdin.destroy();
      if (signal) reject(new Error(`warren ${args.join(' ')} ended by ${signal}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return filesUnder(path);
    return e.isFile() ? [path] : [];
  });
}

describe('warren secret', () => {
  it('set reads stdin, list shows no value, rm removes; the value is in no output, log, audit row or state file but the key', async () => {
    await using dir = await makeTempDir('warren-secret-cli-');
    const root = dir.path;
    const stateDir = join(root, 'var');
    const providerKey = `sk-cli-${randomBytes(12).toString('hex')}`;
    const agentToken = `ghp-cli-${randomBytes(12).toString('hex')}`;
    const outputs: Run[] = [];
    const warren = async (args: readonly string[], input?: string) => {
      const result = await run(root, args, input ?? '');
      outputs.push(result);
      return result;
    };

    const set = await warren(['secret', 'set', 'coder', 'OPENAI_API_KEY', '--gateway'], `${providerKey}\n`);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    expect(set.stdout).toBe('stored secret OPENAI_API_KEY of template coder (for its LLM gateway only); the value is not shown again\n');
    expect((await warren(['secret', 'set', 'coder-2', 'GH_TOKEN'], `${agentToken}\r\n`)).code).toBe(0);
    const replaced = await warren(['secret', 'set', 'coder-2', 'GH_TOKEN', '--json'], agentToken);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ target: 'coder-2', kind: 'agent', name: 'GH_TOKEN', gateway: false, created: false });

    const list = await warren(['secret', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^TARGET +KIND +NAME +RECEIVER +UPDATED$/);
    expect(list.stdout).toMatch(/^coder +template +OPENAI_API_KEY +gateway +\d{4}-/m);
    expect(list.stdout).toMatch(/^coder-2 +agent +GH_TOKEN +agent +\d{4}-/m);
    const listed = JSON.parse((await warren(['secret', 'list', 'coder-2', '--json'])).stdout) as unknown[];
    expect(listed).toEqual([{ target: 'coder-2', kind: 'agent', name: 'GH_TOKEN', gateway: false, createdMs: expect.any(Number), updatedMs: expect.any(Number) }]);

    // What was stored is exactly the input without its trailing newline, under a private key file.
    const keyPath = secretsKeyPath(stateDir);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    {
      const db = openDatabase(join(stateDir, 'warren.db'));
      try {
        const resolved = openSecretStore(db, { keyPath }).secretsFor('coder-2', 'coder');
        expect(resolved.agent.map((s) => [s.name, s.value])).toEqual([['GH_TOKEN', agentToken]]);
        expect(resolved.gateway.map((s) => [s.name, s.value])).toEqual([['OPENAI_API_KEY', providerKey]]);
      } finally {
        db.close();
      }
    }

    const rm = await warren(['secret', 'rm', 'coder', 'OPENAI_API_KEY']);
    expect(rm).toMatchObject({ code: 0, stdout: 'removed secret OPENAI_API_KEY of template coder\n' });
    const again = await warren(['secret', 'rm', 'coder', 'OPENAI_API_KEY']);
    expect(again).toMatchObject({ code: 1, stderr: 'warren: no secret OPENAI_API_KEY of coder (warren secret list)\n' });
    expect((await warren(['secret', 'list', 'coder'])).stdout).toBe('no secrets of coder: warren secret set <template|agent> NAME [--gateway] < value-file\n');
    const audit = await warren(['audit', '--action', 'secret.*', '--json']);
    expect(audit.code).toBe(0);

    const db = openDatabase(join(stateDir, 'warren.db'));
    try {
      const rows = openAudit(db).query({ action: 'secret.*' });
      expect(rows.map((r) => [r.actor.startsWith('user:'), r.action, r.object, r.details])).toEqual([
        [true, 'secret.set', 'secret:coder/OPENAI_API_KEY', { target: 'coder', name: 'OPENAI_API_KEY', gateway: true }],
        [true, 'secret.set', 'secret:coder-2/GH_TOKEN', { target: 'coder-2', name: 'GH_TOKEN', gateway: false }],
        [true, 'secret.set', 'secret:coder-2/GH_TOKEN', { target: 'coder-2', name: 'GH_TOKEN', gateway: false }],
        [true, 'secret.delete', 'secret:coder/OPENAI_API_KEY', { target: 'coder', name: 'OPENAI_API_KEY', gateway: true }],
      ]);
      const everyRow = JSON.stringify(openAudit(db).query({}));
      for (const value of [providerKey, agentToken]) expect(everyRow).not.toContain(value);
    } finally {
      db.close();
    }
    expect(audit.stdout).toContain('secret.delete');

    for (const value of [providerKey, agentToken]) {
      for (const output of outputs) expect(`${output.stdout}${output.stderr}`).not.toContain(value);
      for (const file of filesUnder(stateDir)) expect(readFileSync(file).includes(Buffer.from(value)), file).toBe(false);
    }
  });

  it('refuses a terminal, empty input, too long a value, a bad target or name; nothing is stored', async () => {
    await using dir = await makeTempDir('warren-secret-cli-');
    const root = dir.path;

    const tty = await run(root, [], undefined, {}, ['script', '-qec', `${process.execPath} ${cli} secret set coder OPENAI_API_KEY`, '/dev/null']);
    expect(tty.code).toBe(1);
    expect(tty.stdout).toContain('the value is read from standard input, not a terminal: warren secret set coder OPENAI_API_KEY < value-file');

    const empty = await run(root, ['secret', 'set', 'coder', 'X'], '\n');
    expect(empty).toMatchObject({ code: 1, stderr: 'warren: standard input held no value: warren secret set coder X < value-file [WARREN_USAGE]\n' });
    const long = await run(root, ['secret', 'set', 'coder', 'X'], 'x'.repeat(200 * 1024));
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/longer than 65536 bytes/);
    const target = await run(root, ['secret', 'set', 'Coder', 'X'], 'v');
    expect(target.code).toBe(1);
    expect(target.stderr).toMatch(/target "Coder" is neither a template name .* nor an agent name .*\[WARREN_SECRET_INVALID\]/);
    const name = await run(root, ['secret', 'set', 'coder', 'lower'], 'v');
    expect(name.stderr).toMatch(/secret name "lower" must be 1-64 upper-case letters/);

    expect((await run(root, ['secret', 'list', '--json'], '')).stdout).toBe('[]\n');
  });

  it('WARREN_SECRETS_KEY_FILE puts the key elsewhere; a world-readable key file is refused', async () => {
    await using dir = await makeTempDir('warren-secret-cli-');
    const keyFile = join(dir.path, 'keys', 'warren.key');
    const set = await run(dir.path, ['secret', 'set', 'coder', 'A'], 'value-a', { WARREN_SECRETS_KEY_FILE: keyFile });
    expect(set.code).toBe(0);
    expect(statSync(keyFile)).toMatchObject({ size: 32 });
    expect(existsSync(join(dir.path, 'var', 'secrets.key'))).toBe(false);

    chmodSync(keyFile, 0o644);
    const refused = await run(dir.path, ['secret', 'set', 'coder', 'B'], 'value-b', { WARREN_SECRETS_KEY_FILE: keyFile });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `warren: secrets key file ${keyFile}: has mode 0644: group or others may read it; make it private (chmod 600 ${keyFile}) [WARREN_SECRET_KEY]\n`,
    );
    expect(JSON.parse((await run(dir.path, ['secret', 'list', '--json'], '')).stdout)).toMatchObject([{ name: 'A' }]);
  });
});
