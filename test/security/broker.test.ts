/**
 * Who may drive the broker (attack cases 61, 67, 68 and 69): the embedded nats-server takes only
 * the supervisor's generated credentials, assignments and results must carry the instance's
 * signature (and an assignment must name an execution committed for its agent), and supervisors
 * sharing one NATS keep to their own subjects, streams and consumers.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { SIGNATURE_HEADER, brokerNamespace, keyedMessageId, signMessage, startNatsServer, type EmbeddedNatsServer } from '@warren/broker';
import { defaultBrokerInstance } from '@warren/supervisor';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type TestLayout } from '../support/cli.js';
import { attack, auditRows, embeddedNatsUrl, statusOf } from './support.js';

const { layouts, running } = cleanUpAfterEach();
const servers: { nats: EmbeddedNatsServer; dir: TempDir }[] = [];
afterEach(async () => {
  for (const { nats, dir } of servers.splice(0)) {
    await nats.close();
    await dir.close();
  }
});

beforeAll(() => requireMachine());

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  return made;
}

/** An external nats-server without any authorization, as a shared NATS may be. */
async function externalNats(authorization?: { user: string; password: string }): Promise<EmbeddedNatsServer> {
  const dir = await makeTempDir('warren-security-nats-');
  const nats = await startNatsServer({ storeDir: dir.path, ...(authorization ? { authorization } : {}) });
  servers.push({ nats, dir });
  return nats;
}

function rejections(made: TestLayout): { subject: string; field: string; reason: string; taskId?: string }[] {
  if (!existsSync(join(made.dir, 'var', 'warren.db'))) return [];
  return auditRows(made, '--action', 'broker.rejected').map((r) => r.details as { subject: string; field: string; reason: string });
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

function uidRangeOf(made: TestLayout): [number, number] {
  const args = made.args();
  const [min, max] = args[args.indexOf('--uid-range') + 1]!.split('-').map(Number);
  return [min!, max!];
}

/** A task that runs until the file `go` appears in its workspace, then prints `real-done`. */
const WAITING = 'while [ ! -e go ]; do sleep 0.2; done; echo real-done';

describe('the embedded nats-server', () => {
  it('refuses connections without the generated credentials, which only root can read (cases 67-69)', async () => {
    const made = layout({ t1: shellTask('t1', 'echo ok') });
    const up = startWarren(made.args('up', '--kill-grace', '1s'));
    running.push(up);
    await waitFor('the embedded nats-server', () => embeddedNatsUrl(up.stderr()) !== undefined);
    const url = embeddedNatsUrl(up.stderr())!;
    await waitFor('t1 done', () => statusOf(made.file('t1')) === 'done', 120_000);

    // Any local user, and root without the password, is refused.
    const outsider = await attack(url, 'connect');
    expect(outsider.connected, JSON.stringify(outsider)).toBe(false);
    expect(outsider.error).toMatch(/Authorization Violation/);
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(/Authorization Violation/);

    const state = join(made.dir, 'var');
    expect(modeOf(state)).toBe(0o700);
    expect(modeOf(join(state, 'nats'))).toBe(0o700);
    expect(modeOf(join(state, 'nats', 'nats-server.conf'))).toBe(0o600);
    expect(modeOf(join(state, 'nats', 'auth'))).toBe(0o700);
    expect(modeOf(join(state, 'nats', 'auth', 'password'))).toBe(0o600);
    expect(modeOf(join(state, 'broker', 'signing-key'))).toBe(0o600);
    const password = readFileSync(join(state, 'nats', 'auth', 'password'), 'utf8').trim();
    expect(modeOf(join(state, 'nats', 'nats-users.conf'))).toBe(0o600);
    expect(readFileSync(join(state, 'nats', 'nats-users.conf'), 'utf8')).toContain(`password: "${password}"`);
    // With the password the server answers, so the refusals above were about credentials.
    const nc = await connect({ servers: url, reconnect: false, user: 'warren', pass: password });
    await nc.close();

    up.child.kill('SIGTERM');
    expect((await up.done).code).toBe(0);
    running.splice(running.indexOf(up), 1);

    // A restart on the same state dir reuses the password.
    const again = await warren(made.args('run', '--until-idle'));
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    expect(readFileSync(join(state, 'nats', 'auth', 'password'), 'utf8').trim()).toBe(password);
  }, 300_000);
});

describe('a shared NATS without authorization', () => {
  it('refuses a forged result and injected assignments, and audits each (cases 68, 69)', async () => {
    const nats = await externalNats();
    const made = layout({ slow: shellTask('slow', WAITING) });
    const up = startWarren(made.args('up', '--kill-grace', '1s', '--nats-url', nats.url, '--instance', 'sec-b'));
    running.push(up);
    const ns = brokerNamespace('sec-b');
    await waitFor('slow running', () => statusOf(made.file('slow')) === 'in_progress' && auditRows(made, '--action', 'task.start').length === 1, 120_000);

    // As uid 65534: a result for the running task, with the message id the real one would have had.
    const forged = await attack(nats.url, 'publish', ns.resultSubject('shell-1'), 'slow:1:result', {
      taskId: 'slow', attempt: 1, agent: 'shell-1', outcome: 'succeeded', exitCode: 0, signal: null,
      summary: 'FORGED RESULT by uid 65534', outputs: [], durationMs: 1, finishedAtMs: Date.now(),
    });
    expect(forged.stored, JSON.stringify(forged)).toBeDefined();
    // As uid 65534: an assignment for the running agent.
    const injected = await attack(nats.url, 'publish', ns.assignSubject('shell-1'), 'evil:1', {
      taskId: 'evil', attempt: 1, agent: 'shell-1', title: 'evil', body: '', command: 'id > ~/pwned', fields: {},
      timeoutMs: 60_000, assignedAtMs: Date.now(),
    });
    expect(injected.stored, JSON.stringify(injected)).toBeDefined();
    // With the instance's key (as if it had leaked): an assignment naming no committed execution.
    const key = Buffer.from(readFileSync(join(made.dir, 'var', 'broker', 'signing-key'), 'utf8').trim());
    const ghost = JSON.stringify({
      taskId: 'ghost', attempt: 1, agent: 'shell-1', title: 'ghost', body: '', command: 'id > ~/ghost-pwned', fields: {},
      timeoutMs: 60_000, assignedAtMs: Date.now(),
    });
    const nc = await connect({ servers: nats.url, reconnect: false });
    try {
      const h = natsHeaders();
      h.set(SIGNATURE_HEADER, signMessage(key, ns.assignSubject('shell-1'), ghost));
      await jetstream(nc).publish(ns.assignSubject('shell-1'), ghost, { headers: h, msgID: keyedMessageId(key, ns.assignSubject('shell-1'), 'ghost:1') });
    } finally {
      await nc.close();
    }

    await waitFor('three broker.rejected rows', () => rejections(made).length >= 3, 60_000);
    const rows = rejections(made);
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ subject: 'warren.sec-b.result.shell-1', field: SIGNATURE_HEADER, reason: 'the signature header is missing' }),
        expect.objectContaining({ subject: 'warren.sec-b.assign.shell-1', field: SIGNATURE_HEADER, reason: 'the signature header is missing' }),
        expect.objectContaining({ subject: 'warren.sec-b.assign.shell-1', field: 'taskId', reason: 'no execution ghost:1 was committed', taskId: 'ghost' }),
      ]),
    );
    expect(up.stderr()).toContain('broker message rejected');
    expect(statusOf(made.file('slow'))).toBe('in_progress');
    expect(made.file('slow')).not.toContain('FORGED');

    // The real result still lands (the forged one did not take its message id), and nothing injected ran.
    const home = join(made.dir, 'home', 'shell', 'shell-1');
    writeFileSync(join(home, 'work', 'slow', 'go'), '');
    await waitFor('slow done', () => statusOf(made.file('slow')) === 'done', 120_000);
    expect(made.file('slow')).toContain('real-done');
    expect(made.file('slow')).not.toContain('FORGED');
    expect(existsSync(join(home, 'pwned'))).toBe(false);
    expect(existsSync(join(home, 'ghost-pwned'))).toBe(false);
    const completes = auditRows(made, '--action', 'task.complete');
    expect(completes.map((r) => r.details.durationMs)).not.toContain(1);
    expect(auditRows(made, '--action', 'task.assign').map((r) => r.object)).toEqual(['task:slow']);
  }, 300_000);

  it('keeps two supervisors apart: each runs only its own tasks under its own uids, neither loses its consumers (case 61)', async () => {
    const nats = await externalNats();
    const c = layout({ c1: shellTask('c1', 'echo C1 uid $(id -u)') });
    let d = layout({ d1: shellTask('d1', 'sleep 1; echo D1 uid $(id -u)') });
    while (uidRangeOf(d)[0] === uidRangeOf(c)[0]) {
      layouts.splice(layouts.indexOf(d), 1);
      d.remove();
      d = layout({ d1: shellTask('d1', 'sleep 1; echo D1 uid $(id -u)') });
    }
    const upC = startWarren(c.args('up', '--kill-grace', '1s', '--nats-url', nats.url));
    running.push(upC);
    await waitFor('c1 done', () => statusOf(c.file('c1')) === 'done', 120_000);

    // D starts on the same NATS (it resets its own results consumer at start) and works its board.
    const runD = await warren(d.args('run', '--until-idle', '--nats-url', nats.url));
    expect(runD.code, runD.stderr.slice(-3000)).toBe(0);
    const uidIn = (text: string, [min, max]: [number, number]) => {
      const uid = Number(/uid (\d+)/.exec(text)?.[1]);
      return uid >= min && uid <= max;
    };
    expect(d.file('d1')).toMatch(/^status: done$/m);
    expect(uidIn(d.file('d1'), uidRangeOf(d)), d.file('d1')).toBe(true);
    expect(uidIn(c.file('c1'), uidRangeOf(c)), c.file('c1')).toBe(true);

    // C's results consumer survived D: a new task of C finishes.
    writeFileSync(join(c.dir, 'kanban', 'tasks', 'c2.md'), shellTask('c2', 'echo C2 uid $(id -u)'));
    await waitFor('c2 done', () => statusOf(c.file('c2')) === 'done', 120_000);
    expect(uidIn(c.file('c2'), uidRangeOf(c)), c.file('c2')).toBe(true);

    // Each has its own streams and consumers; neither instance's tasks show in the other's trail.
    const [nsC, nsD] = [c, d].map((l) => brokerNamespace(defaultBrokerInstance(join(l.dir, 'var'))));
    expect(nsC!.instance).not.toBe(nsD!.instance);
    const nc = await connect({ servers: nats.url, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.consumers.info(nsC!.resultsStream, nsC!.resultsConsumer)).name).toBe(nsC!.resultsConsumer);
      expect((await jsm.consumers.info(nsD!.resultsStream, nsD!.resultsConsumer)).name).toBe(nsD!.resultsConsumer);
      const streams = (await jsm.streams.names().next()).sort();
      expect(streams).toEqual([...nsC!.streams, ...nsD!.streams].map((s) => s.name).sort());
    } finally {
      await nc.close();
    }
    expect(auditRows(c, '--action', 'task.assign').map((r) => r.object).sort()).toEqual(['task:c1', 'task:c2']);
    expect(auditRows(d, '--action', 'task.assign').map((r) => r.object)).toEqual(['task:d1']);
    expect(rejections(c)).toEqual([]);
    expect(rejections(d)).toEqual([]);
  }, 300_000);
});

describe('an external NATS that requires credentials', () => {
  it('is reached with user:password in the URL or --nats-user and NATS_PASSWORD, and refused without them', async () => {
    const password = 'external-password-0123456789';
    const nats = await externalNats({ user: 'ext', password });
    const port = new URL(nats.url).port;
    const made = layout({ u1: shellTask('u1', 'echo u1') });

    const withUrl = await warren(made.args('run', '--until-idle', '--nats-url', `nats://ext:${password}@127.0.0.1:${port}`));
    expect(withUrl.code, withUrl.stderr.slice(-3000)).toBe(0);
    expect(statusOf(made.file('u1'))).toBe('done');
    expect(withUrl.stderr).not.toContain(password);

    writeFileSync(join(made.dir, 'kanban', 'tasks', 'u2.md'), shellTask('u2', 'echo u2'));
    const withUser = await warren(made.args('run', '--until-idle', '--nats-url', nats.url, '--nats-user', 'ext'), 240_000, { NATS_PASSWORD: password });
    expect(withUser.code, withUser.stderr.slice(-3000)).toBe(0);
    expect(statusOf(made.file('u2'))).toBe('done');

    writeFileSync(join(made.dir, 'kanban', 'tasks', 'u3.md'), shellTask('u3', 'echo u3'));
    const without = await warren(made.args('run', '--until-idle', '--nats-url', nats.url));
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/Authorization Violation/);
    expect(statusOf(made.file('u3'))).toBe('ready');

    const notCreds = join(made.dir, 'not-creds');
    writeFileSync(notCreds, 'hello\n');
    const badCreds = await warren(made.args('run', '--until-idle', '--nats-url', nats.url, '--nats-creds', notCreds));
    expect(badCreds.code).not.toBe(0);
    expect(badCreds.stderr).toContain(`${notCreds}: is not a NATS credentials file`);
  }, 300_000);
});
