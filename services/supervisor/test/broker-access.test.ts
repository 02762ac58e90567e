import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { brokerInstance, defaultBrokerInstance, externalNatsAccess } from '../src/broker-access.js';
import { resolveConfig, type SupervisorOptions } from '../src/config.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function config(options: Partial<SupervisorOptions>) {
  return resolveConfig({ root: '/srv/warren', ...options }, '/srv/warren/packages/agent-runner');
}

describe('brokerInstance', () => {
  it('is --instance, else derived from the absolute state dir', () => {
    expect(brokerInstance(config({ instance: 'team-a' }))).toBe('team-a');
    const derived = brokerInstance(config({ stateDir: 'var' }));
    expect(derived).toMatch(/^w[0-9a-f]{6}$/);
    expect(derived).toBe(defaultBrokerInstance('/srv/warren/var'));
    expect(brokerInstance(config({ stateDir: 'other' }))).not.toBe(derived);
  });

  it('refuses an --instance that cannot be a subject token', () => {
    expect(() => config({ instance: 'a.b' })).toThrow(/option 'instance'/);
  });
});

describe('--nats-url and --nats-replicas', () => {
  it('splits several URLs and defaults to 3 replicas (at most the URL count), 1 for one URL or the embedded server', () => {
    const three = config({ natsUrl: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224' });
    expect(three.natsUrls).toEqual(['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223', 'nats://127.0.0.1:4224']);
    expect(three.natsReplicas).toBe(3);
    expect(config({ natsUrl: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223' }).natsReplicas).toBe(2);
    expect(config({ natsUrl: 'nats://127.0.0.1:4222' }).natsReplicas).toBe(1);
    expect(config({}).natsReplicas).toBe(1);
    expect(config({}).natsUrls).toEqual([]);
    expect(config({ natsUrl: 'nats://127.0.0.1:4222', natsReplicas: 3 }).natsReplicas).toBe(3);
  });

  it('names the URL at fault and refuses replicas the embedded server cannot keep', () => {
    expect(() => config({ natsUrl: 'nats://127.0.0.1:4222,,nats://127.0.0.1:4224' })).toThrow(/option 'nats-url': URL 2 of 3 is empty/);
    expect(() => config({ natsUrl: 'nats://127.0.0.1:4222,not a url' })).toThrow(/option 'nats-url': URL 2 of 2 "not a url" is not a URL/);
    expect(() => config({ natsReplicas: 3 })).toThrow(/option 'nats-replicas': 3 replicas need a NATS cluster/);
    expect(() => config({ natsUrl: 'nats://127.0.0.1:4222', natsReplicas: 7 })).toThrow(/option 'natsReplicas'/);
  });
});

describe('externalNatsAccess', () => {
  it('takes user:password out of the URL', async () => {
    const access = await externalNatsAccess(config({ natsUrl: 'nats://me:p%40ss@127.0.0.1:4222' }));
    expect(access.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(access.credentials).toEqual({ kind: 'user-password', user: 'me', password: 'p@ss' });
  });

  it('takes the servers of a cluster, separated by commas, with the same user in each or none', async () => {
    const access = await externalNatsAccess(config({ natsUrl: 'nats://me:pw@127.0.0.1:4222, nats://127.0.0.1:4223,nats://me:pw@127.0.0.1:4224' }));
    expect(access.servers).toEqual(['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223', 'nats://127.0.0.1:4224']);
    expect(access.credentials).toEqual({ kind: 'user-password', user: 'me', password: 'pw' });
    await expect(externalNatsAccess(config({ natsUrl: 'nats://a:pw@127.0.0.1:4222,nats://b:pw@127.0.0.1:4223' }))).rejects.toThrow(
      /option 'nats-url': the URLs carry different users/,
    );
  });

  it('takes --nats-user with NATS_PASSWORD, and no credentials when none are given', async () => {
    expect((await externalNatsAccess(config({ natsUrl: 'nats://127.0.0.1:4222', natsUser: 'me', natsPassword: 'pw' }))).credentials).toEqual({
      kind: 'user-password', user: 'me', password: 'pw',
    });
    expect((await externalNatsAccess(config({ natsUrl: 'nats://127.0.0.1:4222' }))).credentials).toBeUndefined();
  });

  it('refuses two kinds of credentials and a password without a user', async () => {
    await expect(externalNatsAccess(config({ natsUrl: 'nats://a:b@127.0.0.1:4222', natsUser: 'me' }))).rejects.toThrow(
      /give one kind of NATS credentials/,
    );
    await expect(externalNatsAccess(config({ natsUrl: 'nats://127.0.0.1:4222', natsPassword: 'pw' }))).rejects.toThrow(
      /NATS_PASSWORD: is set but no NATS user/,
    );
  });

  it('reads a credentials file, naming it when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-creds-'));
    dirs.push(dir);
    const creds = join(dir, 'user.creds');
    writeFileSync(creds, '-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.x\n------END NATS USER JWT------\n');
    const access = await externalNatsAccess(config({ natsUrl: 'nats://127.0.0.1:4222', natsCreds: creds }));
    expect(access.credentials).toMatchObject({ kind: 'creds', source: creds });
    await expect(externalNatsAccess(config({ natsUrl: 'nats://127.0.0.1:4222', natsCreds: join(dir, 'missing') }))).rejects.toThrow(
      `${join(dir, 'missing')}: cannot read the NATS credentials file`,
    );
  });
});
