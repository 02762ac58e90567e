/**
 * Disk and inode fill of the home, with the per-agent home image of @warren/sandbox
 * (`ensureHomeImage`: a sparse ext4 file loop-mounted nosuid,nodev,noexec on the home). Writing
 * past the quota fails with ENOSPC inside, both for bytes and for inodes, while a neighbour
 * finishes its job. Host side: the image occupies at most its size on the host disk, the home is
 * a separate mount with the safe options, and after the end nothing of the uid runs and the image
 * unmounts.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHomeImage, homeImageUsage, processesOfUid, releaseHomeImage } from '@warren/sandbox';
import { E, parseProbe, succeeded, Warren } from './support/fixture.js';
import { perl } from './support/probes.js';

const MiB = 1024 * 1024;

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** The mount options of the mount at `path` in this process's mount table, or null. */
function mountOptionsAt(path: string): string[] | null {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === path)
    .at(-1);
  return line ? line.split(' ')[5]!.split(',') : null;
}

describe('home quota', () => {
  it('disk and inode fill of the home end in ENOSPC at the image size; a neighbour finishes meanwhile', async () => {
    const sizeBytes = 16 * MiB;
    const account = await warren.account('quota');
    const imageDir = join(warren.stateDir, 'home-images');
    mkdirSync(imageDir, { mode: 0o700 });
    const imagePath = join(imageDir, `${account.name}.ext4`);
    const image = await ensureHomeImage({ imagePath, sizeBytes, mountPoint: account.home, uid: account.uid, gid: account.gid });
    try {
      expect(image).toMatchObject({ created: true, mounted: true });
      expect(mountOptionsAt(account.home)).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
      const body = String.raw`
        my $home = $ENV{HOME};
        try_open('credentials_moved_in', '<', "$home/.warren/credentials");
        open(my $f, '>', "$home/fill") or die "open: $!";
        my ($written, $chunk) = (0, "q" x (1 << 20));
        for (1 .. 64) {
          my $n = syswrite($f, $chunk);
          if (!defined $n) { out('disk_errno', err()); last }
          $written += $n;
        }
        close $f;
        out('written', $written);
        unlink "$home/fill";
        mkdir "$home/many" or die "mkdir: $!";
        my $files = 0;
        for my $i (1 .. 200000) {
          if (open(my $e, '>', "$home/many/$i")) { close $e; $files++ } else { out('inode_errno', err()); last }
        }
        out('files', $files);
        hold();
      `;
      const agent = await warren.spawnAs(account, perl(body));
      await agent.waitForLog('probes-done', 60_000);
      const r = parseProbe(agent.log());
      expect(r).toMatchObject({ credentials_moved_in: 'ok', disk_errno: E('ENOSPC'), inode_errno: E('ENOSPC') });
      expect(Number(r.written)).toBeLessThan(sizeBytes);
      expect(Number(r.written)).toBeGreaterThan(sizeBytes / 2);
      expect(Number(r.files)).toBeGreaterThan(100);
      // Host side: the filesystem is full of inodes, and the image takes at most its size on disk.
      const usage = await homeImageUsage(account.home);
      expect(usage.usedInodes).toBe(usage.totalInodes);
      expect(statSync(imagePath).blocks * 512).toBeLessThanOrEqual(sizeBytes);

      const job = await warren.neighbourJob();
      expect(succeeded(job.exit), job.printed).toBe(true);
      expect(job.onHost).toBe(job.expected);

      // (no release file: the home has no inode left for it) SIGTERM ends the holding probe.
      expect(await agent.sandbox.stop(2000)).toEqual({ kind: 'signaled', signal: 'SIGTERM' });
      expect(processesOfUid(account.uid)).toEqual([]);
    } finally {
      expect(await releaseHomeImage(account.home)).toBe(true);
    }
    expect(mountOptionsAt(account.home)).toBeNull();
  });
});
