/**
 * `warren-pod-agent`'s inputs: its two files under `~/.warren/` (checked field by field) and the
 * home files it writes before the runner starts.
 */
import { lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { readPodAgentConfig } from '@warren/kube';
import { makeTempDir } from '@warren/testing';
import { writeHomeFiles } from '../src/pod-agent/main.js';
import { FAKE_SEED } from './support.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function home(agent: unknown): Promise<string> {
  const dir = await makeTempDir('warren-pod-home-');
  cleanups.push(() => dir.close());
  await mkdir(join(dir.path, '.warren'));
  await writeFile(join(dir.path, '.warren', 'nats.json'), JSON.stringify({ servers: ['nats://127.0.0.1:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.warren.agent.a' }));
  await writeFile(join(dir.path, '.warren', 'agent.json'), JSON.stringify(agent));
  return dir.path;
}

const AGENT = {
  agent: 'a',
  instance: '0123456789abcdef',
  template: 't',
  brokerInstance: null,
  capabilities: ['shell'],
  runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
  signingKey: 'ab'.repeat(32),
};

test('reads both files, and names the file and field of a bad one', async () => {
  const good = await readPodAgentConfig(await home(AGENT));
  expect(good.agent).toMatchObject({ agent: 'a', instance: '0123456789abcdef', homeFiles: [] });
  expect(good.nats.servers).toEqual(['nats://127.0.0.1:4222']);
  await expect(readPodAgentConfig(await home({ ...AGENT, instance: 'XYZ' }))).rejects.toThrow(/agent\.json instance: must be 16 lowercase hex digits/);
  await expect(readPodAgentConfig(await home({ ...AGENT, extra: 1 }))).rejects.toThrow(/agent\.json/);
  await expect(readPodAgentConfig(await home({ ...AGENT, homeFiles: [{ path: '../x', contentBase64: '', mode: 0o600 }] }))).rejects.toThrow(/homeFiles\.0\.path: must be relative/);
  const dir = await makeTempDir('warren-pod-home-');
  cleanups.push(() => dir.close());
  await expect(readPodAgentConfig(dir.path)).rejects.toThrow(/nats\.json: cannot be read/);
});

test('home files: written with their mode, a changed seed file kept, overwrite replaces, a symlink is replaced not followed', async () => {
  const dir = await makeTempDir('warren-pod-home-');
  cleanups.push(() => dir.close());
  const file = (path: string, text: string, extra: { overwrite?: boolean } = {}) => ({ path, contentBase64: Buffer.from(text).toString('base64'), mode: 0o640, ...extra });
  expect(await writeHomeFiles(dir.path, [file('notes/a.txt', 'seed'), file('b.txt', 'secret', { overwrite: true })])).toEqual(['notes/a.txt', 'b.txt']);
  expect((await lstat(join(dir.path, 'notes', 'a.txt'))).mode & 0o777).toBe(0o640);
  await writeFile(join(dir.path, 'notes', 'a.txt'), 'changed by the agent');
  const outside = join(dir.path, 'outside.txt');
  await writeFile(outside, 'untouched');
  await symlink(outside, join(dir.path, 'link.txt'));
  expect(await writeHomeFiles(dir.path, [file('notes/a.txt', 'seed'), file('b.txt', 'new secret', { overwrite: true }), file('link.txt', 'through?')])).toEqual(['b.txt', 'link.txt']);
  expect(await readFile(join(dir.path, 'notes', 'a.txt'), 'utf8')).toBe('changed by the agent');
  expect(await readFile(join(dir.path, 'b.txt'), 'utf8')).toBe('new secret');
  expect((await lstat(join(dir.path, 'link.txt'))).isSymbolicLink()).toBe(false);
  expect(await readFile(outside, 'utf8')).toBe('untouched');
});
