/**
 * The HTTP API of a real `warren up` (built CLI, real nats-server, bubblewrap agents, SQLite): the
 * sign-in link it prints, reads joined with the live world, operator actions through the durable
 * command queue decided by the policy and audited under the token's name, a card created in the
 * board's own format, the event stream resumed with Last-Event-ID, and /metrics.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type CliProcess } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

beforeAll(() => requireMachine());

/** The dashboard address and sign-in token `warren up` printed. */
async function signInOf(up: CliProcess): Promise<{ url: string; token: string }> {
  await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()));
  const link = /Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!;
  const parsed = new URL(link);
  return { url: parsed.origin, token: parsed.searchParams.get('token')! };
}

/** One server-sent event as parsed from the stream. */
interface StreamedEvent {
  id: number;
  kind: string;
  data: { seq: number; kind: string; actor: string; object: string };
}

/** Reads `/api/v1/events` until `stop()`; events land in `events` as they arrive. */
function followEvents(url: string, token: string, lastEventId?: number): { events: StreamedEvent[]; stop: () => void } {
  const events: StreamedEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    const response = await fetch(`${url}/api/v1/events`, {
      headers: { authorization: `Bearer ${token}`, ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }) },
      signal: controller.signal,
    });
    const decoder = new TextDecoder();
    let buffer = '';
    const reader = response.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const field = (name: string) => [...block.matchAll(/^(\w+): ?(.*)$/gm)].find((m) => m[1] === name)?.[2];
        const data = field('data');
        if (data !== undefined) events.push({ id: Number(field('id')), kind: field('event') ?? '', data: JSON.parse(data) as StreamedEvent['data'] });
      }
    }
  })().catch(() => undefined);
  return { events, stop: () => controller.abort() };
}

describe('the HTTP API of warren up', () => {
  it('serves the live fleet and board, acts through the command queue as the token, and streams events', async () => {
    const made = makeTestLayout({ sleeper: shellTask('sleeper', 'sleep 600'), quick: shellTask('quick', 'echo done') }, { copyAgents: true });
    layouts.push(made);
    const up = startWarren(made.args('up', '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    running.push(up);
    const { url, token } = await signInOf(up);
    const auth = { authorization: `Bearer ${token}` };
    const get = async <T>(path: string): Promise<T> => {
      const response = await fetch(`${url}${path}`, { headers: auth });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
      return (await response.json()) as T;
    };
    const stream = followEvents(url, token);

    await waitFor('the sleeper to run', () => /^status: in_progress$/m.test(made.file('sleeper')));
    await waitFor('the quick task to finish', () => /^status: done$/m.test(made.file('quick')));

    // Reads: the live world joined with the rows.
    const { agents } = await get<{ agents: { name: string; template: string; uid: number; live: { status: string; load: number; memoryBytes: number } | null }[] }>('/api/v1/agents');
    const busy = agents.find((a) => a.live?.status === 'busy');
    expect(busy, JSON.stringify(agents)).toBeDefined();
    expect(busy!.live!.load).toBe(1);
    expect(busy!.live!.memoryBytes).toBeGreaterThan(0);
    // The card shows in progress from the assignment on; the row says running once the agent has
    // reported the start, which a loaded machine can take a while to deliver.
    type Card = { id: string; column: string; state: string | null; agent: string | null };
    let sleeper: Card | undefined;
    const runningBy = Date.now() + 60_000;
    for (;;) {
      sleeper = (await get<{ cards: Card[] }>('/api/v1/board')).cards.find((c) => c.id === 'sleeper');
      if (sleeper?.state !== 'assigned' || Date.now() > runningBy) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(sleeper).toMatchObject({ column: 'in_progress', state: 'running', agent: busy!.name });
    const detail = await get<{ id: string; executions: unknown[]; title: string }>('/api/v1/tasks/quick');
    expect(detail).toMatchObject({ id: 'quick', title: 'Task quick' });
    expect(detail.executions).toHaveLength(1);
    // The supervisor's database has the message ledger: no messages yet, an empty graph.
    expect(await get('/api/v1/messages')).toEqual({ messages: [], edges: [] });
    // A template's role and a manager's quotas (a worker here: none).
    expect((await get<{ templates: unknown[] }>('/api/v1/templates')).templates).toContainEqual(expect.objectContaining({ name: 'shell', role: 'worker', manager: null }));
    const metrics = await fetch(`${url}/metrics`, { headers: auth }).then((r) => r.text());
    expect(metrics).toMatch(/^warren_tasks\{state="running"\} 1$/m);
    expect(metrics).toMatch(/^warren_assignment_latency_seconds_count\{template="shell"\} 2$/m);

    // An action: 202 with the command, carried out by the tick, audited as the token's user.
    const cancel = await fetch(`${url}/api/v1/tasks/sleeper/cancel`, { method: 'POST', headers: auth });
    expect(cancel.status).toBe(202);
    const { command } = (await cancel.json()) as { command: number };
    await waitFor('the command to be carried out', () => /^status: failed$/m.test(made.file('sleeper')));
    const outcome = await get<{ state: string; requestedBy: string }>(`/api/v1/commands/${command}`);
    expect(outcome).toMatchObject({ state: 'done', requestedBy: 'user:local-operator' });

    // A viewer may read but not act: 403 naming the rule, audited.
    const viewer = JSON.parse((await warren(['token', 'create', '--name', 'watcher', '--role', 'viewer', '--json', ...made.args()])).stdout) as { token: string };
    const denied = await fetch(`${url}/api/v1/agents/${busy!.name}/stop`, { method: 'POST', headers: { authorization: `Bearer ${viewer.token}` } });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { rule: unknown }).rule).not.toBeUndefined();
    expect((await fetch(`${url}/api/v1/agents`, { headers: { authorization: `Bearer ${viewer.token}` } })).status).toBe(200);
    // No token, a foreign Origin.
    expect((await fetch(`${url}/api/v1/agents`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/agents`, { headers: { ...auth, origin: 'http://evil.example' } })).status).toBe(403);

    // A card written in the board's own format.
    const created = await fetch(`${url}/api/v1/tasks`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Made over HTTP', column: 'backlog', capabilities: ['shell'], parent: 'quick' }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const { id, path } = (await created.json()) as { id: string; path: string };
    expect(existsSync(join(made.dir, 'kanban', path))).toBe(true);
    expect(readFileSync(join(made.dir, 'kanban', path), 'utf8')).toMatch(/^title: Made over HTTP$/m);
    expect(readFileSync(join(made.dir, 'kanban', path), 'utf8'), 'a subtask of quick').toMatch(/^parent: quick$/m);
    await waitFor('the new card on the board', () => readdirSync(join(made.dir, 'kanban', 'tasks')).some((f) => f.includes(id)));

    const rows = JSON.parse((await warren(['audit', '--json', '--actor', 'user:local-operator', '--limit', '10000', ...made.args()])).stdout) as { action: string; object: string; decision: string | null; details: { act?: string } }[];
    expect(rows.some((r) => r.action === 'policy.decide' && r.object === 'api:/api/v1/tasks/:id/cancel' && r.decision === 'allow')).toBe(true);
    expect(rows.some((r) => r.action === 'policy.decide' && r.object === 'task:sleeper' && r.details.act === 'cancel' && r.decision === 'allow')).toBe(true);
    expect(rows.some((r) => r.action === 'task.create' && r.object === `task:${id}`)).toBe(true);
    const watcherRows = JSON.parse((await warren(['audit', '--json', '--actor', 'user:watcher', ...made.args()])).stdout) as { object: string; decision: string }[];
    expect(watcherRows.some((r) => r.object === 'api:/api/v1/agents/:name/stop' && r.decision === 'deny')).toBe(true);

    // The stream saw the cancellation; a client that missed events resumes after its last id.
    await waitFor('the cancellation on the stream', () => stream.events.some((e) => e.kind === 'command.task.cancel'));
    stream.stop();
    const seen = stream.events.map((e) => e.id);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    const from = stream.events.find((e) => e.kind === 'command.task.cancel')!.id - 5;
    const resumed = followEvents(url, token, from);
    await waitFor('the missed events', () => resumed.events.some((e) => e.id === from + 5));
    resumed.stop();
    expect(resumed.events.slice(0, 5).map((e) => e.id)).toEqual([from + 1, from + 2, from + 3, from + 4, from + 5]);
  });

  it('refuses to start on an address in use, naming it', async () => {
    const made = makeTestLayout({}, { copyAgents: true });
    layouts.push(made);
    const first = startWarren(made.args('up', '--http', '127.0.0.1:0'));
    running.push(first);
    const { url } = await signInOf(first);
    // Local tools find the running API in the state directory, until the supervisor stops.
    const addressFile = join(made.dir, 'var', 'http.json');
    expect(JSON.parse(readFileSync(addressFile, 'utf8'))).toEqual({ url, pid: first.child.pid });
    const other = makeTestLayout({}, { copyAgents: true });
    layouts.push(other);
    const second = await warren(other.args('up', '--http', url.replace('http://', '')));
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`${url.replace('http://', '')} is in use`);
    expect(second.stderr).toContain('WARREN_HTTP_BUSY');
    first.child.kill('SIGTERM');
    expect((await first.done).code).toBe(0);
    expect(existsSync(addressFile)).toBe(false);
  });
});
