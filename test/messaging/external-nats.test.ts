/**
 * Messaging between agents when the broker is an external NATS (`warren up --nats-url` with a user
 * and password, a nats-server the test starts): two shell agents in real sandboxes exchange
 * messages through the agent channel (`::send`) and their bus sockets (`warren-bus`), a message
 * left in an inbox is still there after `warren up` restarts and is read then, and the log says
 * once per run that per-agent NATS users are off (the server's users are not the supervisor's to
 * write), so no agent gets NATS credentials of its own.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNatsServer, type EmbeddedNatsServer } from '@warren/broker';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type AuditRow, type CliProcess } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();
const servers: { nats: EmbeddedNatsServer; dir: TempDir }[] = [];

beforeAll(() => requireMachine());
afterEach(async () => {
  for (const { nats, dir } of servers.splice(0)) {
    await nats.close();
    await dir.close();
  }
});

const USER = 'ext';
const PASSWORD = 'external-messaging-password-42';
const USERS_OFF = 'per-agent NATS users are off';

/** An external nats-server with JetStream that takes one user and password. */
async function externalNats(): Promise<EmbeddedNatsServer> {
  const dir = await makeTempDir('warren-messaging-nats-');
  try {
    const nats = await startNatsServer({ storeDir: dir.path, authorization: { user: USER, password: PASSWORD } });
    servers.push({ nats, dir });
    return nats;
  } catch (error) {
    await dir.close();
    throw error;
  }
}

async function stop(up: CliProcess): Promise<string> {
  up.child.kill('SIGTERM');
  const result = await up.done;
  expect(result.code, result.stderr.slice(-3000)).toBe(0);
  return result.stderr;
}

/** How many times `text` occurs in `log`. */
const occurrences = (log: string, text: string): number => log.split(text).length - 1;

/** The NDJSON lines of a file, parsed; [] when it does not exist. */
function lines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('messages between agents over an external NATS', () => {
  it('carries ::send and warren-bus messages between two agents, keeps an unread message in the inbox across a restart of warren up, and says once per run that per-agent NATS users are off', async () => {
    const nats = await externalNats();
    // A task that waits for `$HOME/go` (written by the test), runs it in its workspace and ends; the
    // script's own output goes to out.txt, fd 3 is the task's stdout (the agent channel's lines).
    const run = (id: string): string => shellTask(id, 'while [ ! -s $HOME/go ]; do sleep 0.2; done; sh $HOME/go 3>&1 > out.txt 2>&1; echo "exit=$?" >> out.txt');
    const made = makeTestLayout({ one: run('one'), two: run('two') });
    layouts.push(made);
    const { dir, args } = made;
    const upArgs = args('up', '--http', 'off', '--kill-grace', '1s', '--nats-url', nats.url, '--nats-user', USER);
    const env = { NATS_PASSWORD: PASSWORD };

    // First run: the two tasks run side by side on two agents.
    const first = startWarren(upArgs, env);
    running.push(first);
    await waitFor('both tasks running', () => /^status: in_progress$/m.test(made.file('one')) && /^status: in_progress$/m.test(made.file('two')), 120_000);
    const a = /^assignee: (.+)$/m.exec(made.file('one'))![1]!;
    const b = /^assignee: (.+)$/m.exec(made.file('two'))![1]!;
    expect(a).not.toBe(b);
    const home = (agent: string): string => join(dir, 'home', 'shell', agent);
    const work = (agent: string, id: string, file: string): string => join(home(agent), 'work', id, file);
    // No agent has NATS credentials of its own: everything goes through the supervisor.
    expect(existsSync(join(home(a), '.warren', 'nats.json'))).toBe(false);
    expect(existsSync(join(home(b), '.warren', 'nats.json'))).toBe(false);

    // B takes two messages from its inbox through its bus socket.
    writeFileSync(
      join(home(b), 'go'),
      [
        'for i in $(seq 1 8); do',
        '  warren-bus recv --wait 30000 --max 1 >> inbox.ndjson || exit 1',
        '  [ "$(wc -l < inbox.ndjson)" -ge 2 ] && break',
        'done',
        '',
      ].join('\n'),
    );
    // A sends one through the agent channel and one through its bus socket; once B has read both,
    // a third that B leaves in its inbox.
    writeFileSync(
      join(home(a), 'go'),
      [
        `echo '::send ${b}:: {"via":"channel","n":1}' >&3`,
        `warren-bus send ${b} '{"via":"bus","n":2}' > sent.json || exit 1`,
        'while [ ! -e $HOME/go2 ]; do sleep 0.2; done',
        `warren-bus send ${b} '{"via":"bus","n":3,"kept":true}' > kept.json || exit 1`,
        '',
      ].join('\n'),
    );
    const show = (file: string): string => `${file}:\n${existsSync(file) ? readFileSync(file, 'utf8') : '(none)'}`;
    await waitFor('B to finish reading', () => existsSync(work(b, 'two', 'out.txt')) && /exit=/.test(readFileSync(work(b, 'two', 'out.txt'), 'utf8')), 120_000).catch((error: unknown) => {
      const files = [work(a, 'one', 'out.txt'), work(a, 'one', 'sent.json'), work(b, 'two', 'inbox.ndjson'), work(b, 'two', 'out.txt')].map(show).join('\n');
      throw new Error(`${(error as Error).message}\n${files}\n${first.stderr().slice(-6000)}`);
    });
    expect(readFileSync(work(b, 'two', 'out.txt'), 'utf8')).toBe('exit=0\n');
    const got = lines(work(b, 'two', 'inbox.ndjson'));
    expect(got.map((m) => m.body)).toEqual(expect.arrayContaining([{ via: 'channel', n: 1 }, { via: 'bus', n: 2 }]));
    expect(got).toHaveLength(2);
    for (const m of got) expect(m).toMatchObject({ from: a, request: false, deliveries: 1 });

    writeFileSync(join(home(a), 'go2'), 'x');
    await waitFor('A to finish sending', () => existsSync(work(a, 'one', 'out.txt')) && /exit=/.test(readFileSync(work(a, 'one', 'out.txt'), 'utf8')), 120_000);
    expect(readFileSync(work(a, 'one', 'out.txt'), 'utf8')).toBe('exit=0\n');
    const kept = JSON.parse(readFileSync(work(a, 'one', 'kept.json'), 'utf8')) as { id: string };
    await waitFor('both tasks done', () => /^status: done$/m.test(made.file('one')) && /^status: done$/m.test(made.file('two')), 120_000);
    const firstLog = await stop(first);
    expect(occurrences(firstLog, USERS_OFF), firstLog.slice(-3000)).toBe(1);
    expect(firstLog).not.toContain(PASSWORD);

    // Second run on the same state and the same external NATS: two tasks read their agent's inbox,
    // once both run (each agent takes one task at a time, so they run on two agents).
    const read = (id: string): string =>
      shellTask(id, 'while [ ! -e $HOME/read ]; do sleep 0.2; done; for i in 1 2 3; do warren-bus recv --wait 30000 --max 1 >> got.ndjson || exit 1; [ -s got.ndjson ] && break; done; echo done');
    writeFileSync(join(dir, 'kanban', 'tasks', 'three.md'), read('three'));
    writeFileSync(join(dir, 'kanban', 'tasks', 'four.md'), read('four'));
    const second = startWarren(upArgs, env);
    running.push(second);
    await waitFor('both reading tasks running', () => /^status: in_progress$/m.test(made.file('three')) && /^status: in_progress$/m.test(made.file('four')), 120_000);
    const holders = ['three', 'four'].map((id) => ({ id, agent: /^assignee: (.+)$/m.exec(made.file(id))![1]! }));
    expect(holders.map((h) => h.agent).sort()).toEqual([a, b].sort());
    for (const agent of [a, b]) writeFileSync(join(home(agent), 'read'), 'x');
    const onB = holders.find((h) => h.agent === b)!;
    await waitFor('B to read the kept message', () => lines(work(b, onB.id, 'got.ndjson')).length > 0, 120_000);
    expect(lines(work(b, onB.id, 'got.ndjson'))).toEqual([expect.objectContaining({ id: kept.id, from: a, body: { via: 'bus', n: 3, kept: true } })]);

    // The supervisor's decisions were audited as with the embedded server.
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'message.sent', ...args()])).stdout) as (AuditRow & { actor: string })[];
    expect(rows.filter((r) => r.actor === `agent:${a}` && r.object === `agent:${b}`).map((r) => (r.details as { via?: string }).via)).toEqual(['channel', 'channel', 'channel']);
    const secondLog = await stop(second);
    expect(occurrences(secondLog, USERS_OFF), secondLog.slice(-3000)).toBe(1);
  }, 420_000);
});
