import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, onTestFinished, test } from 'vitest';
import { openDatabase } from '@warren/store';
import { TOKEN_FORMAT, openTokenStore } from '@warren/http';

const WARREN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'services', 'supervisor', 'bin', 'warren.js');

/** Runs the built CLI (`npm run build` first); resolves with its exit code and output. */
function warren(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WARREN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function stateDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'warren-cli-token-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  return join(root, 'var');
}

describe('warren token', () => {
  test('create prints the token once, list never shows it, revoke ends it', async () => {
    const dir = stateDir();
    const created = await warren(['token', 'create', '--name', 'alice', '--role', 'operator', '--state-dir', dir]);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.split('\n')[0]!;
    expect(token).toMatch(TOKEN_FORMAT);
    expect(created.stdout).toMatch(/token 'alice' \(operator\) does not expire; it is shown only now/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    const listed = await warren(['token', 'list', '--state-dir', dir]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^NAME\s+ROLE\s+STATE/);
    expect(listed.stdout).toMatch(/alice\s+operator\s+live/);
    expect(listed.stdout).not.toContain(token.slice(4));
    const json = JSON.parse((await warren(['token', 'list', '--json', '--state-dir', dir])).stdout) as { name: string; state: string }[];
    expect(json).toEqual([expect.objectContaining({ name: 'alice', role: 'operator', state: 'live', expiresMs: null, revokedMs: null })]);
    expect(JSON.stringify(json)).not.toContain(token.slice(4));

    const db = openDatabase(join(dir, 'warren.db'));
    onTestFinished(() => db.close());
    const tokens = openTokenStore(db);
    expect(tokens.verify(token, Date.now())).toMatchObject({ principal: 'user:alice', role: 'operator' });

    const again = await warren(['token', 'create', '--name', 'alice', '--role', 'viewer', '--state-dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/a token named 'alice' exists; revoke it first .*\[WARREN_TOKEN_EXISTS\]/);

    const revoked = await warren(['token', 'revoke', 'alice', '--state-dir', dir]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe("revoked token 'alice'\n");
    expect(tokens.verify(token, Date.now())).toBeUndefined();
    expect((await warren(['token', 'list', '--state-dir', dir])).stdout).toMatch(/alice\s+operator\s+revoked/);
    const twice = await warren(['token', 'revoke', 'alice', '--state-dir', dir]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/no live token named 'alice'/);
  });

  test('--expires sets the expiry; an unknown role or a bad duration is a usage error', async () => {
    const dir = stateDir();
    const before = Date.now();
    const created = await warren(['token', 'create', '--name', 'bob', '--role', 'viewer', '--expires', '30d', '--json', '--state-dir', dir]);
    expect(created.code, created.stderr).toBe(0);
    const made = JSON.parse(created.stdout) as { token: string; role: string; expiresMs: number };
    expect(made.token).toMatch(TOKEN_FORMAT);
    expect(made.role).toBe('viewer');
    expect(made.expiresMs).toBeGreaterThanOrEqual(before + 30 * 86_400_000);
    expect(made.expiresMs).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000);

    const role = await warren(['token', 'create', '--name', 'eve', '--role', 'admin', '--state-dir', dir]);
    expect(role.code).toBe(2);
    expect(role.stderr).toMatch(/Allowed choices are operator, viewer/);
    const duration = await warren(['token', 'create', '--name', 'eve', '--role', 'viewer', '--expires', 'soon', '--state-dir', dir]);
    expect(duration.code).toBe(1);
    expect(duration.stderr).toMatch(/--expires/);
    const name = await warren(['token', 'create', '--name', 'root', '--role', 'viewer', '--state-dir', dir]);
    expect(name.code).toBe(1);
    expect(name.stderr).toMatch(/reserved/);
  });
});
