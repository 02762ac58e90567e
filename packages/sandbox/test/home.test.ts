import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, statfsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureHomeImage,
  homeImageUsage,
  parseMountInfo,
  releaseHomeImage,
  removeStaleMounts,
  SandboxError,
  spawnSandbox,
  type SandboxSpec,
} from '@warren/sandbox';
import { cleanup, makeSpec, perlArgv, readLog, requireSandboxHost, track } from './helpers.js';

beforeAll(requireSandboxHost);
afterEach(cleanup);

const MiB = 1024 * 1024;
const ENOSPC = 28;

function mountOf(path: string) {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => m.mountPoint === path);
}

/** A spec whose home gets an 8 MiB image (released after the test, before the temp dir goes). */
async function specWithImage(argv: string[], sizeBytes = 8 * MiB): Promise<SandboxSpec & { hostDir: string; imagePath: string }> {
  const spec = makeSpec(argv, { limits: { fsizeBytes: 64 * MiB } });
  const imagePath = join(spec.hostDir, 'home.ext4');
  await ensureHomeImage({ imagePath, sizeBytes, mountPoint: spec.homeHostPath, uid: spec.uid, gid: spec.gid });
  onCleanup(() => releaseHomeImage(spec.homeHostPath));
  return { ...spec, imagePath };
}

const releases: (() => Promise<unknown>)[] = [];
function onCleanup(fn: () => Promise<unknown>): void {
  releases.push(fn);
}
afterEach(async () => {
  for (const fn of releases.splice(0).reverse()) await fn();
});

describe('ensureHomeImage', () => {
  it('makes a sparse ext4 image once, moves the existing home into it and mounts it nosuid,nodev,noexec', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    writeFileSync(join(spec.homeHostPath, 'skel.txt'), 'from the skeleton');
    chownSync(join(spec.homeHostPath, 'skel.txt'), spec.uid, spec.gid);
    mkdirSync(join(spec.homeHostPath, '.warren'), { mode: 0o700 });
    chownSync(join(spec.homeHostPath, '.warren'), spec.uid, spec.gid);
    const imagePath = join(spec.hostDir, 'home.ext4');
    const options = { imagePath, sizeBytes: 16 * MiB, mountPoint: spec.homeHostPath, uid: spec.uid, gid: spec.gid };
    const first = await ensureHomeImage(options);
    onCleanup(() => releaseHomeImage(spec.homeHostPath));
    expect(first).toEqual({ imagePath, mountPoint: spec.homeHostPath, created: true, mounted: true, sizeBytes: 16 * MiB });
    const image = statSync(imagePath);
    expect(image.size).toBe(16 * MiB);
    expect(image.blocks * 512).toBeLessThan(4 * MiB); // sparse
    const mount = mountOf(spec.homeHostPath);
    expect(mount?.fsType).toBe('ext4');
    const options_ = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === spec.homeHostPath)!
      .split(' ')[5]!
      .split(',');
    expect(options_).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    const root = statSync(spec.homeHostPath);
    expect([root.uid, root.gid, root.mode & 0o7777]).toEqual([spec.uid, spec.gid, 0o700]);
    expect(readFileSync(join(spec.homeHostPath, 'skel.txt'), 'utf8')).toBe('from the skeleton');
    expect(statSync(join(spec.homeHostPath, 'skel.txt')).uid).toBe(spec.uid);
    expect(statSync(join(spec.homeHostPath, '.warren')).mode & 0o777).toBe(0o700);

    expect(await ensureHomeImage(options)).toMatchObject({ created: false, mounted: false });
    // After a release the same image comes back with its data; the directory below stayed empty.
    expect(await releaseHomeImage(spec.homeHostPath)).toBe(true);
    expect(mountOf(spec.homeHostPath)).toBeUndefined();
    expect(existsSync(join(spec.homeHostPath, 'skel.txt'))).toBe(false);
    expect(await ensureHomeImage(options)).toMatchObject({ created: false, mounted: true });
    expect(readFileSync(join(spec.homeHostPath, 'skel.txt'), 'utf8')).toBe('from the skeleton');
    expect(await releaseHomeImage(spec.homeHostPath)).toBe(true);
    expect(await releaseHomeImage(spec.homeHostPath)).toBe(false);
  });

  it('fails with ENOSPC inside the sandbox when the disk or the inodes are full; the host is unaffected', async () => {
    const fill = `
      open(my $f, '>', 'big') or die "open: $!";
      my $block = "x" x 65536; my $n = 0;
      while ($n < 64 * 1024 * 1024) { my $w = syswrite($f, $block); if (!defined $w) { print "disk errno=", $! + 0, "\\n"; last } $n += $w }
      close $f; print "disk bytes=$n\\n"; unlink 'big';
      my $i = 0;
      while ($i < 100000) { open(my $g, '>', "f$i") or do { print "inode errno=", $! + 0, "\\n"; last }; close $g; $i++ }
      print "inode files=$i\\n";`;
    const spec = await specWithImage(perlArgv(fill));
    const hostFreeBefore = statfsSync(spec.hostDir).bavail * statfsSync(spec.hostDir).bsize;
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    const log = readLog(spec);
    expect(log).toContain(`disk errno=${ENOSPC}\n`);
    expect(log).toContain(`inode errno=${ENOSPC}\n`);
    const bytes = Number(/disk bytes=(\d+)/.exec(log)![1]);
    expect(bytes).toBeGreaterThan(4 * MiB);
    expect(bytes).toBeLessThanOrEqual(8 * MiB);
    const usage = await homeImageUsage(spec.homeHostPath);
    expect(usage.usedInodes).toBe(usage.totalInodes);
    expect(Number(/inode files=(\d+)/.exec(log)![1])).toBeGreaterThan(usage.totalInodes - 20);
    // The host lost at most the image's size.
    const hostFreeAfter = statfsSync(spec.hostDir).bavail * statfsSync(spec.hostDir).bsize;
    expect(hostFreeBefore - hostFreeAfter).toBeLessThanOrEqual(8 * MiB + MiB);
    expect(statSync(spec.imagePath).size).toBe(8 * MiB);
  });

  it('mounts noexec and nosuid: a copied program or setuid shell cannot run from the home', async () => {
    const script = 'cp /bin/sh ./sh && chmod 4755 ./sh && ./sh -c "id -u"; echo exec=$?';
    const spec = await specWithImage(['/bin/sh', '-c', `exec 2>&1; ${script}`]);
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(readLog(spec)).toMatch(/Permission denied\nexec=126\n$/);
    expect(lstatSync(join(spec.homeHostPath, 'sh')).mode & 0o4000).toBe(0o4000);
  });

  it('refuses symlinks, a non-empty directory over an existing image, and unsafe parents', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const victim = join(spec.hostDir, 'victim');
    writeFileSync(victim, 'precious');
    const base = { sizeBytes: 8 * MiB, uid: spec.uid, gid: spec.gid };
    // image path planted as a symlink to a host file
    const linkedImage = join(spec.hostDir, 'linked.ext4');
    symlinkSync(victim, linkedImage);
    await expect(ensureHomeImage({ ...base, imagePath: linkedImage, mountPoint: spec.homeHostPath })).rejects.toThrow(SandboxError);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(mountOf(spec.homeHostPath)).toBeUndefined();
    // mount point that is a symlink
    const linkedHome = join(spec.hostDir, 'linked-home');
    symlinkSync('/etc', linkedHome);
    await expect(ensureHomeImage({ ...base, imagePath: join(spec.hostDir, 'a.ext4'), mountPoint: linkedHome })).rejects.toThrow(/symlinks are refused/);
    expect(mountOf('/etc')).toBeUndefined();
    // existing image, but files were put in the directory meanwhile: they would be hidden
    const imagePath = join(spec.hostDir, 'b.ext4');
    await ensureHomeImage({ ...base, imagePath, mountPoint: spec.homeHostPath });
    await releaseHomeImage(spec.homeHostPath);
    writeFileSync(join(spec.homeHostPath, 'stray'), 'x');
    await expect(ensureHomeImage({ ...base, imagePath, mountPoint: spec.homeHostPath })).rejects.toThrow(/not empty/);
    expect(mountOf(spec.homeHostPath)).toBeUndefined();
    // a mount point whose parent others can write (they could swap it for a symlink)
    await expect(ensureHomeImage({ ...base, imagePath: join(spec.hostDir, 'c.ext4'), mountPoint: '/tmp/warren-not-safe-home' })).rejects.toThrow(
      /writable by group or others/,
    );
  });

  it('removeStaleMounts unmounts what a previous run left under a directory', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    await ensureHomeImage({ imagePath: join(spec.hostDir, 'home.ext4'), sizeBytes: 8 * MiB, mountPoint: spec.homeHostPath, uid: spec.uid, gid: spec.gid });
    onCleanup(() => releaseHomeImage(spec.homeHostPath));
    expect(await removeStaleMounts(spec.hostDir)).toEqual([spec.homeHostPath]);
    expect(mountOf(spec.homeHostPath)).toBeUndefined();
    expect(await removeStaleMounts(spec.hostDir)).toEqual([]);
  });
});
