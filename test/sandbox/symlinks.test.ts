/**
 * Symlink and TOCTOU tricks against the supervisor's operations on a home. The agent plants
 * symlinks to host files and directories, a dangling symlink, a FIFO and a symlinked directory in
 * its home, then exits; the supervisor then does what it does with homes, in its order: starts a
 * sandbox on the home again, moves the home into its quota image (`ensureHomeImage`), and deletes
 * the account (`accounts.remove`). Host side: no target was read, written, chowned or deleted
 * (hashes, owners and modes of the targets are unchanged) and nothing was created at a dangling
 * target.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHomeImage, releaseHomeImage } from '@warren/sandbox';
import { E, parseProbe, sha256File, sha256Tree, succeeded, Warren } from './support/fixture.js';
import { perl } from './support/probes.js';

const MiB = 1024 * 1024;

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** Hash, owner and mode of a host path (following nothing). */
function fingerprint(path: string): string {
  const info = lstatSync(path);
  const content = info.isDirectory() ? sha256Tree(path) : sha256File(path);
  return `${info.uid}:${info.gid}:${(info.mode & 0o7777).toString(8)}:${content}`;
}

describe('planted symlinks', () => {
  it('respawn, moving the home into its image and deleting the account never follow what the agent planted', async () => {
    const targets = join(warren.root, 'host-targets');
    mkdirSync(targets, { mode: 0o755 });
    const hostFile = join(targets, 'host-file.txt');
    writeFileSync(hostFile, 'host data\n');
    chmodSync(hostFile, 0o644);
    const hostDir = join(targets, 'host-dir');
    mkdirSync(hostDir, { mode: 0o755 });
    writeFileSync(join(hostDir, 'inner.txt'), 'inner\n');
    const dangling = join(targets, 'created-by-supervisor');
    const watched = ['/etc/shadow', '/etc/passwd', hostFile, hostDir];
    const before = new Map(watched.map((p) => [p, fingerprint(p)]));

    const plant = String.raw`
      my $home = $ENV{HOME};
      for my $link (['shadow', '/etc/shadow'], ['etc', '/etc'], ['host-file', '${hostFile}'], ['host-dir', '${hostDir}'],
                    ['dangling', '${dangling}'], ['.warren/credentials.link', '/etc/shadow']) {
        out("link_$link->[0]", symlink($link->[1], "$home/$link->[0]") ? 'ok' : err());
      }
      out('fifo', POSIX::mkfifo("$home/fifo", 0600) ? 'ok' : err());
      mkdir "$home/deep"; out('deep_link', symlink('/etc', "$home/deep/up") ? 'ok' : err());
      # The agent's view: the host targets do not exist inside.
      try_open('host_file_inside', '<', "$home/host-file");
    `;
    /** Makes an account whose home holds the plantings (the agent ran and exited). */
    const planted = async (prefix: string) => {
      const account = await warren.account(prefix);
      const agent = await warren.spawnAs(account, perl(plant));
      expect(succeeded(await agent.sandbox.exited), agent.log()).toBe(true);
      expect(parseProbe(agent.log())).toMatchObject({
        link_shadow: 'ok',
        link_etc: 'ok',
        'link_host-file': 'ok',
        link_dangling: 'ok',
        fifo: 'ok',
        deep_link: 'ok',
        host_file_inside: E('ENOENT'),
      });
      return account;
    };
    const account = await planted('planter');

    // 1. The supervisor starts a sandbox on the same home again.
    const second = await warren.spawnAs(account, ['/bin/sh', '-c', 'ls -A "$HOME" | sort | tr "\\n" " "; echo']);
    expect(succeeded(await second.sandbox.exited), second.log()).toBe(true);
    expect(second.log()).toContain('shadow');

    // 2. It moves the home into its quota image (contents copied without dereferencing).
    const imageDir = join(warren.stateDir, 'home-images');
    mkdirSync(imageDir, { mode: 0o700 });
    const image = await ensureHomeImage({
      imagePath: join(imageDir, `${account.name}.ext4`),
      sizeBytes: 8 * MiB,
      mountPoint: account.home,
      uid: account.uid,
      gid: account.gid,
    });
    try {
      expect(image.created).toBe(true);
      expect(lstatSync(join(account.home, 'shadow')).isSymbolicLink()).toBe(true);
      expect(lstatSync(join(account.home, 'fifo')).isFIFO()).toBe(true);
      const root = statSync(account.home);
      expect([root.uid, root.gid, root.mode & 0o7777]).toEqual([account.uid, account.gid, 0o700]);
      for (const [path, print] of before) expect(fingerprint(path), path).toBe(print);
    } finally {
      await releaseHomeImage(account.home);
    }

    // 3. It deletes an account whose home (no image) holds the plantings, and the imaged one.
    const other = await planted('planter');
    await warren.accounts.remove(other.name);
    await warren.accounts.remove(account.name);
    for (const home of [other.home, account.home]) expect(existsSync(home), home).toBe(false);
    for (const [path, print] of before) expect(fingerprint(path), path).toBe(print);
    expect(existsSync(dangling)).toBe(false);
    expect(readFileSync(hostFile, 'utf8')).toBe('host data\n');
  });
});
