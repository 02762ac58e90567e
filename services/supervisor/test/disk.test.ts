import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BASELINE_WALK_MS, DiskPressure, type DiskOffender } from '../src/disk-pressure.js';
import { setTimeout as delay } from 'node:timers/promises';
import {
  DiskReserve,
  filesystemUsedBytes,
  formatBytes,
  heldBytesFor,
  HomeWatch,
  homeUsage,
  parseDiskReserve,
  reserveBytes,
  WALK_LIST_BYTES,
  WALK_SLICE_ENTRIES,
  type DiskReading,
} from '../src/disk.js';
import { parseTemplate } from '../src/templates.js';

const template = (resources: string) =>
  `name: shell\ncapabilities: [shell]\nruntime:\n  kind: shell\nresources:\n  memory: 256MiB\n${resources}`;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('home limit of a template', () => {
  it('is 1 GiB by default and caps RLIMIT_FSIZE', () => {
    const t = parseTemplate(template(''), 'agents/shell.yaml');
    expect(t.homeLimitBytes).toBe(1024 ** 3);
    expect(t.resources.fsizeBytes).toBe(256 * 1024 ** 2);
    const small = parseTemplate(template('  homeLimit: 64MiB\n'), 'agents/shell.yaml');
    expect(small.homeLimitBytes).toBe(64 * 1024 ** 2);
    expect(small.resources.fsizeBytes).toBe(64 * 1024 ** 2);
  });

  it('names a bad size and its line', () => {
    expect(() => parseTemplate(template('  homeLimit: lots\n'), 'a.yaml')).toThrow(/^a\.yaml:7: 'resources\.homeLimit' 'lots' is not a size/);
  });
});

describe('disk reserve', () => {
  it('parses a size, a share, or both (the smaller counts)', () => {
    expect(parseDiskReserve('256MiB', 'x')).toEqual({ bytes: 256 * 1024 ** 2, percent: undefined });
    expect(reserveBytes(parseDiskReserve('5%', 'x'), 1000 * 1024 ** 2)).toBe(50 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('256MiB,5%', 'x'), 300 * 1024 ** 2)).toBe(15 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('256MiB,5%', 'x'), 100 * 1024 ** 3)).toBe(256 * 1024 ** 2);
    expect(reserveBytes(parseDiskReserve('0', 'x'), 100 * 1024 ** 3)).toBe(0);
    expect(() => parseDiskReserve('80%', "option 'disk-reserve'")).toThrow(/option 'disk-reserve'.*over 50 %/);
    expect(() => parseDiskReserve('lots', "option 'disk-reserve'")).toThrow(/option 'disk-reserve'.*not a size/);
  });

  it('reports a change once', () => {
    const reserve = new DiskReserve(tmpdir(), { bytes: Number.MAX_SAFE_INTEGER, percent: undefined }, 0);
    expect(reserve.check(1)).toMatchObject({ low: true, changed: true });
    expect(reserve.check(2)).toMatchObject({ low: true, changed: false });
  });
});

describe('space held back for Warren', () => {
  it('is half the reserve, at most 32 MiB', () => {
    expect(heldBytesFor(15 * 1024 ** 2)).toBe(7.5 * 1024 ** 2);
    expect(heldBytesFor(256 * 1024 ** 2)).toBe(32 * 1024 ** 2);
    expect(heldBytesFor(0)).toBe(0);
  });

  it('is written to its file while space allows, counted as free against the reserve, and released on demand', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-held-'));
    dirs.push(dir);
    const file = join(dir, 'disk-reserve');
    const reserve = new DiskReserve(dir, { bytes: 4 * 1024 ** 2, percent: undefined }, 0, file);
    expect(reserve.check(1)).toMatchObject({ low: false, heldBytes: 2 * 1024 ** 2 });
    expect(statSync(file).size).toBe(2 * 1024 ** 2);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // A reserve made again finds the file it left.
    expect(new DiskReserve(dir, { bytes: 4 * 1024 ** 2, percent: undefined }, 0, file).heldBytes).toBe(2 * 1024 ** 2);
    expect(reserve.release()).toBe(2 * 1024 ** 2);
    expect(existsSync(file)).toBe(false);
    expect(reserve.release()).toBe(0);
    expect(reserve.check(2).heldBytes).toBe(2 * 1024 ** 2);
  });

  it('returns the same reading to every call with the time of its read', () => {
    const reserve = new DiskReserve(tmpdir(), { bytes: Number.MAX_SAFE_INTEGER, percent: undefined }, 1_000);
    expect(reserve.check(5)).toMatchObject({ low: true, changed: true, atMs: 5 });
    expect(reserve.check(5)).toMatchObject({ low: true, changed: true, atMs: 5 });
    expect(reserve.check(6)).toMatchObject({ changed: false, atMs: 5 });
  });
});

describe('disk pressure', () => {
  it('on a full filesystem of the state dir, freezes the busy agents there and stops the one whose home grew the most since its task started', async () => {
    const root = mkdtempSync(join(tmpdir(), 'warren-pressure-'));
    dirs.push(root);
    const home = (agent: string) => join(root, 'home', 'shell', agent);
    for (const agent of ['shell-1', 'shell-2', 'shell-3']) mkdirSync(home(agent), { recursive: true });
    mkdirSync(join(root, 'state'));
    writeFileSync(join(home('shell-2'), 'old'), Buffer.alloc(8 * 1024 ** 2, 1));
    const pressure = new DiskPressure({ stateDir: join(root, 'state'), homeRoot: join(root, 'home'), everyMs: 0 });
    await Promise.all(['shell-1', 'shell-2', 'shell-3'].map((agent) => pressure.taskStarted(agent, home(agent))));
    writeFileSync(join(home('shell-1'), 'big'), Buffer.alloc(3 * 1024 ** 2, 1));
    writeFileSync(join(home('shell-3'), 'small'), Buffer.alloc(64 * 1024, 1));
    const reading: DiskReading = { low: true, changed: true, freeBytes: 0, reserveBytes: 16 * 1024 ** 2, heldBytes: 0, atMs: 1 };
    const frozen: string[][] = [];
    const stopped: DiskOffender[] = [];
    const resumed = await new Promise<readonly string[]>((resolve) => {
      pressure.check(reading, 1, {
        busy: () => ['shell-1', 'shell-2', 'shell-3'].map((agent) => ({ agent, dir: home(agent), limitBytes: 1024 ** 3 })),
        full: (agents) => frozen.push([...agents]),
        stop: (offender) => stopped.push(offender),
        resume: resolve,
      });
      expect(frozen).toEqual([['shell-1', 'shell-2', 'shell-3']]);
    });
    expect(stopped.map((o) => o.agent)).toEqual(['shell-1']);
    expect(stopped[0]!.filesystem).toBe('state');
    expect(stopped[0]!.grownBytes).toBeGreaterThanOrEqual(3 * 1024 ** 2);
    expect(stopped[0]!.detail).toMatch(/^the filesystem of the state directory is below its reserve \(0 bytes free\); shell-1 wrote 3(\.\d)? MiB to its home$/);
    expect([...resumed].sort()).toEqual(['shell-2', 'shell-3']);
  });

  it('stops no one when no home grew by 1 MiB, and then searches again only after a second', async () => {
    const root = mkdtempSync(join(tmpdir(), 'warren-pressure-'));
    dirs.push(root);
    mkdirSync(join(root, 'home', 'shell', 'shell-1'), { recursive: true });
    mkdirSync(join(root, 'state'));
    const pressure = new DiskPressure({ stateDir: join(root, 'state'), homeRoot: join(root, 'home'), everyMs: 60_000 });
    await pressure.taskStarted('shell-1', join(root, 'home', 'shell', 'shell-1'));
    const reading: DiskReading = { low: true, changed: true, freeBytes: 4 * 1024 ** 2, reserveBytes: 16 * 1024 ** 2, heldBytes: 0, atMs: 1 };
    const stopped: DiskOffender[] = [];
    let searched = 0;
    let searchEnded: () => void = () => undefined;
    const hooks = {
      busy: () => {
        searched += 1;
        return [{ agent: 'shell-1', dir: join(root, 'home', 'shell', 'shell-1'), limitBytes: 1024 ** 3 }];
      },
      full: () => undefined,
      stop: (offender: DiskOffender) => stopped.push(offender),
      resume: () => searchEnded(),
    };
    await new Promise<void>((resolve) => {
      searchEnded = resolve;
      pressure.check(reading, 1, hooks);
    });
    await new Promise((resolve) => setImmediate(resolve));
    // The same reading again (the state dir's filesystem is read once per interval): no new search.
    pressure.check(reading, 2, hooks);
    // A new reading within the second after a search that found no one: none either.
    pressure.check({ ...reading, atMs: 500 }, 500, hooks);
    expect(searched).toBe(1);
    await new Promise<void>((resolve) => {
      searchEnded = resolve;
      pressure.check({ ...reading, atMs: 1_001 }, 1_001, hooks);
    });
    expect(searched).toBe(2);
    expect(stopped).toEqual([]);
  });
});

describe('home baselines', () => {
  /** A home with 64 KiB in `old`, and a DiskPressure around it. */
  function setUp(): { home: string; pressure: DiskPressure } {
    const root = mkdtempSync(join(tmpdir(), 'warren-baseline-'));
    dirs.push(root);
    const home = join(root, 'home', 'shell', 'shell-1');
    mkdirSync(join(home, 'work'), { recursive: true });
    writeFileSync(join(home, 'old'), Buffer.alloc(64 * 1024, 1));
    return { home, pressure: new DiskPressure({ stateDir: root, homeRoot: join(root, 'home'), everyMs: 0 }) };
  }

  it('walks a home once per BASELINE_WALK_MS when its agent takes tasks back to back, adding the workspaces measured in between', async () => {
    const { home, pressure } = setUp();
    const instance = {};
    const first = await pressure.taskStarted('shell-1', home, 10_000, { instance });
    expect(first).toBeGreaterThanOrEqual(64 * 1024);
    // The task's workspace, measured when its result comes: the next baseline adds it, unwalked.
    mkdirSync(join(home, 'work', 't1'));
    writeFileSync(join(home, 'work', 't1', 'out'), Buffer.alloc(128 * 1024, 1));
    const workspace = await homeUsage(join(home, 'work', 't1'));
    pressure.workspaceMeasured('shell-1', workspace);
    // Written outside any workspace: growth until the next walk.
    writeFileSync(join(home, 'elsewhere'), Buffer.alloc(256 * 1024, 1));
    expect(await pressure.taskStarted('shell-1', home, 10_000 + BASELINE_WALK_MS - 1, { instance })).toBe(first + workspace.bytes);
    expect(pressure.walks).toBe(1);
    // At the interval's end the home is walked again and finds everything.
    const walked = await pressure.taskStarted('shell-1', home, 10_000 + BASELINE_WALK_MS, { instance });
    expect(pressure.walks).toBe(2);
    expect(walked).toBeGreaterThanOrEqual(first + workspace.bytes + 256 * 1024);
  });

  it('walks again for another instance of the agent, without one, and after a workspace not measured whole', async () => {
    const { home, pressure } = setUp();
    const instance = {};
    await pressure.taskStarted('shell-1', home, 10_000, { instance });
    await pressure.taskStarted('shell-1', home, 10_001, { instance: {} });
    expect(pressure.walks).toBe(2);
    await pressure.taskStarted('shell-1', home, 10_002);
    await pressure.taskStarted('shell-1', home, 10_003);
    expect(pressure.walks).toBe(4);
    await pressure.taskStarted('shell-1', home, 10_004, { instance });
    await pressure.taskStarted('shell-1', home, 10_005, { instance });
    expect(pressure.walks).toBe(5);
    pressure.workspaceMeasured('shell-1', { bytes: 4096, complete: false });
    expect(await pressure.taskStarted('shell-1', home, 10_006, { instance })).toBeGreaterThanOrEqual(64 * 1024);
    expect(pressure.walks).toBe(6);
    // A clock gone back: walked.
    await pressure.taskStarted('shell-1', home, 9_000, { instance });
    expect(pressure.walks).toBe(7);
  });

  it('does not walk a home on a filesystem of its own, and walks one flagged so that is on the shared filesystem', async () => {
    const { home, pressure } = setUp();
    expect(statSync('/proc').dev).not.toBe(statSync(home).dev);
    expect(await pressure.taskStarted('shell-2', '/proc', 10_000, { instance: {}, ownFilesystem: true })).toBe(0);
    expect(pressure.walks).toBe(0);
    expect(await pressure.taskStarted('shell-1', home, 10_000, { instance: {}, ownFilesystem: true })).toBeGreaterThanOrEqual(64 * 1024);
    expect(pressure.walks).toBe(1);
  });
});

describe('homeUsage', () => {
  it('sums allocated blocks, not apparent sizes, and stops past a bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'work', 't1'), { recursive: true });
    writeFileSync(join(dir, 'work', 't1', 'data'), Buffer.alloc(1024 * 1024, 1));
    const full = await homeUsage(dir);
    expect(full.complete).toBe(true);
    expect(full.bytes).toBeGreaterThanOrEqual(1024 * 1024);
    const bounded = await homeUsage(dir, 200_000, 1024);
    expect(bounded.complete).toBe(false);
    expect(formatBytes(64 * 1024 ** 2)).toBe('64 MiB');
    expect(formatBytes(1024 ** 3)).toBe('1 GiB');
  });
});

describe('homeUsage, read a slice at a time', () => {
  it('counts what is under a name that is not UTF-8', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(dir);
    const hidden = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0xff, 0xfe])]);
    mkdirSync(hidden);
    writeFileSync(Buffer.concat([hidden, Buffer.from('/data')]), Buffer.alloc(1024 * 1024, 1));
    const usage = await homeUsage(dir);
    expect(usage).toMatchObject({ complete: true });
    expect(usage.bytes).toBeGreaterThanOrEqual(1024 * 1024);
  });

  it('reads a directory too large to list at once through a handle it closes, lets other work run between slices, and stops past a bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(dir);
    const big = join(dir, 'big');
    mkdirSync(big);
    const files = 8 * WALK_SLICE_ENTRIES + 4_000;
    for (let i = 0; i < files; i += 1) writeFileSync(join(big, `file-${i}`), '');
    writeFileSync(join(big, 'data'), Buffer.alloc(256 * 1024, 1));
    expect(statSync(big).size).toBeGreaterThan(WALK_LIST_BYTES);
    const fds = readdirSync('/proc/self/fd').length;
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const usage = await homeUsage(dir);
    expect(turned).toBe(true);
    expect(usage.complete).toBe(true);
    expect(usage.bytes).toBeGreaterThanOrEqual(256 * 1024);
    const bounded = await homeUsage(dir, files - 10);
    expect(bounded.complete).toBe(false);
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
    // A walk of fewer entries than a slice ends without a turn of the event loop.
    let early = false;
    setImmediate(() => {
      early = true;
    });
    await homeUsage(join(dir, 'missing'), 20_000, Number.POSITIVE_INFINITY, true);
    const small = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(small);
    writeFileSync(join(small, 'one'), 'x');
    expect((await homeUsage(small, 20_000, Number.POSITIVE_INFINITY, true)).bytes).toBeGreaterThan(0);
    expect(early).toBe(false);
    // Without startNow it waits for its turn.
    expect((await homeUsage(small)).bytes).toBeGreaterThan(0);
    expect(early).toBe(true);
  });

  it('walks several homes in turn, one slice per turn of the event loop', async () => {
    const root = mkdtempSync(join(tmpdir(), 'warren-home-'));
    dirs.push(root);
    const homes = ['a', 'b'].map((name) => {
      const home = join(root, name);
      mkdirSync(home);
      for (let i = 0; i < 3 * WALK_SLICE_ENTRIES; i += 1) writeFileSync(join(home, `f${i}`), 'x');
      return home;
    });
    const ended: string[] = [];
    let turns = 0;
    const count = (): void => {
      turns += 1;
      if (ended.length < 2) setImmediate(count);
    };
    setImmediate(count);
    await Promise.all(homes.map((home) => homeUsage(home).then(() => ended.push(home))));
    // Each waits for its turn, then walks three full slices and ends in a fourth: eight slices,
    // one per turn (two walks sliced in the same turn would take four turns), taken in turn.
    expect(ended).toEqual(homes);
    expect(turns).toBeGreaterThanOrEqual(7);
  });
});

describe('home watch', () => {
  /** Waits until `cond` holds, for at most 10 s. */
  async function until(what: string, cond: () => boolean): Promise<void> {
    for (const deadline = Date.now() + 10_000; !cond(); await delay(10)) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen within 10 s`);
    }
  }

  it('walks a home past its limit and reports it, at most once per interval, and forgets a home no longer busy', async () => {
    const home = mkdtempSync(join(tmpdir(), 'warren-watch-'));
    dirs.push(home);
    writeFileSync(join(home, 'big'), Buffer.alloc(256 * 1024, 1));
    const over: number[] = [];
    const watch = new HomeWatch(1_000, (_home, used) => over.push(used));
    const homes = [{ agent: 'shell-1', dir: home, limitBytes: 64 * 1024 }];
    watch.scan(homes, 10_000);
    await until('the first report', () => over.length === 1);
    expect(over[0]).toBeGreaterThan(64 * 1024);
    watch.scan(homes, 10_500);
    await delay(50);
    expect(watch.walks).toBe(1);
    // Far past the interval and any spacing the first walk's duration asks for.
    watch.scan(homes, 1_000_000);
    await until('the second report', () => over.length === 2);
    watch.scan([], 1_001_000);
    // Busy again: walked at once, whatever its last walk.
    watch.scan(homes, 1_002_000);
    await until('the third report', () => over.length === 3);
  });

  it('settles a home with a filesystem of its own by its statfs when that is within the limit, and walks it when it is not', async () => {
    const home = mkdtempSync(join(tmpdir(), 'warren-watch-'));
    dirs.push(home);
    writeFileSync(join(home, 'big'), Buffer.alloc(256 * 1024, 1));
    let used = 1024;
    const over: number[] = [];
    const watch = new HomeWatch(1_000, (_home, bytes) => over.push(bytes), undefined, () => used);
    const homes = [{ agent: 'shell-1', dir: home, limitBytes: 64 * 1024, ownFilesystem: true }];
    watch.scan(homes, 10_000);
    expect(watch.walks).toBe(0);
    // The statfs bound is over the limit: the walk decides (and finds the file).
    used = 1024 * 1024;
    watch.scan(homes, 11_000);
    expect(watch.walks).toBe(1);
    await until('the report', () => over.length === 1);
    expect(over[0]).toBeGreaterThan(64 * 1024);
    expect(filesystemUsedBytes(home)).toBeGreaterThan(0);
    expect(filesystemUsedBytes(join(home, 'missing'))).toBeUndefined();
  });
});
