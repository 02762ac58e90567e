import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { Logger } from '@warren/core';
import { CommandKind } from '@warren/registry';
import { SESSION_COOKIE, routesOf, type RouteInfo } from '@warren/http';
import { testApp } from './app-support.js';
import { agentItem, logPath, taskRow } from './support.js';

describe('read routes', () => {
  test('status joins the registry counts with the instance, version and clock', async () => {
    const { app, ports, viewer } = await testApp({ now: () => 5_000 });
    ports.registry.state.putTask(taskRow('a'));
    const res = await app.inject({ url: '/api/v1/status', headers: viewer });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ supervisor: 'stopped', instance: 'test', version: '0.1.0', startedMs: 1_000, nowMs: 5_000, tasks: { ready: 1 }, openExecutions: 0 });
    expect(res.json<{ auditRows: number }>().auditRows).toBeGreaterThan(0);
  });

  test('agents filter by template, state (row or live status) and capability; one agent adds its executions', async () => {
    const { app, ports, viewer } = await testApp();
    ports.agentItems = [
      agentItem('shell-1'),
      agentItem('shell-2', { state: 'sleeping', live: null }),
      agentItem('reporter-1', { template: 'reporter', capabilities: ['report'], live: { ...agentItem('x').live!, status: 'busy', load: 1 } }),
    ];
    const names = async (query: string) =>
      (await app.inject({ url: `/api/v1/agents${query}`, headers: viewer })).json<{ agents: { name: string }[] }>().agents.map((a) => a.name);
    expect(await names('')).toEqual(['shell-1', 'shell-2', 'reporter-1']);
    expect(await names('?template=shell')).toEqual(['shell-1', 'shell-2']);
    expect(await names('?state=sleeping')).toEqual(['shell-2']);
    expect(await names('?state=busy')).toEqual(['reporter-1']);
    expect(await names('?capability=report')).toEqual(['reporter-1']);

    ports.registry.state.putTask(taskRow('t1', { state: 'running', attempt: 1, agent: 'shell-1' }));
    ports.registry.state.addAssignment('t1', 1, 'shell-1', 2_000, 1_000);
    const one = await app.inject({ url: '/api/v1/agents/shell-1', headers: viewer });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'shell-1', live: { memoryBytes: 1_048_576 }, executions: [{ taskId: 't1', attempt: 1, agent: 'shell-1', waitingMs: 1_000 }] });
    const missing = await app.inject({ url: '/api/v1/agents/ghost-1', headers: viewer });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'not_found', message: "no agent 'ghost-1'" });
  });

  test("an agent's log is tailed, then read on from the offset it returned", async () => {
    const { app, ports, viewer } = await testApp();
    ports.agentItems = [agentItem('shell-1')];
    writeFileSync(logPath(ports, 'shell-1'), 'line one\nline two\n');
    const tail = await app.inject({ url: '/api/v1/agents/shell-1/log?limit=9', headers: viewer });
    expect(tail.json()).toEqual({ text: 'line two\n', next: 18, size: 18 });
    appendFileSync(logPath(ports, 'shell-1'), 'line three\n');
    const more = await app.inject({ url: '/api/v1/agents/shell-1/log?after=18', headers: viewer });
    expect(more.json()).toEqual({ text: 'line three\n', next: 29, size: 29 });
    expect((await app.inject({ url: '/api/v1/agents/shell-1/log?limit=70000', headers: viewer })).statusCode).toBe(400);
    expect((await app.inject({ url: '/api/v1/agents/nobody/log', headers: viewer })).statusCode).toBe(404);
  });

  test('schedules come from the port, an empty list without one', async () => {
    const { app, ports, viewer } = await testApp();
    expect((await app.inject({ url: '/api/v1/schedules', headers: viewer })).json()).toEqual({ file: '', schedules: [], problems: [] });
    const view = {
      file: '/b/schedules.yaml',
      schedules: [{ name: 'beat', cron: '*/2 * * * * *', timezone: null, lastFireMs: 2000, lastTaskId: 'beat-1', nextFireMs: 4000, due: false }],
      problems: [{ message: "schedules.yaml:3: schedule 'x': 'cron' is empty" }],
    };
    (ports as { schedules?: () => typeof view }).schedules = () => view;
    expect((await app.inject({ url: '/api/v1/schedules', headers: viewer })).json()).toEqual(view);
  });

  test('nodes come from the port, an empty list without one', async () => {
    const { app, ports, viewer } = await testApp();
    expect((await app.inject({ url: '/api/v1/nodes', headers: viewer })).json()).toEqual({ nodes: [] });
    const view = {
      nodes: [{ name: 'n1', labels: { zone: 'b' }, capacity: { cpus: 2, memoryBytes: 1024, maxAgents: 4 }, state: 'lost', lastHeartbeatMs: 5, instances: [{ agent: 'shell-1', pid: 7, connected: true, memoryBytes: 9 }], agents: ['shell-1'] }],
    };
    (ports as { nodes?: () => typeof view }).nodes = () => view;
    expect((await app.inject({ url: '/api/v1/nodes', headers: viewer })).json()).toEqual(view);
  });

  test('accounts, templates and the board come from the ports', async () => {
    const { app, ports, viewer } = await testApp();
    ports.agentItems = [agentItem('shell-1')];
    ports.registry.state.putTask(taskRow('a'));
    expect((await app.inject({ url: '/api/v1/accounts', headers: viewer })).json()).toMatchObject({ accounts: [{ name: 'shell-1', template: 'shell', groups: [] }] });
    expect((await app.inject({ url: '/api/v1/templates', headers: viewer })).json()).toMatchObject({ templates: [{ name: 'shell', wip: 1, errors: [] }] });
    expect((await app.inject({ url: '/api/v1/board', headers: viewer })).json()).toMatchObject({
      format: 'warren',
      columns: [{ name: 'ready', count: 1 }, { name: 'doing', wip: 2 }],
      cards: [{ id: 'a', title: 'Title of a', column: 'ready', state: 'ready' }],
    });
  });

  test('tasks join the card title and column, filter by state, agent and the waiting queue; one task adds audit rows and extras', async () => {
    const { app, ports, viewer } = await testApp();
    ports.registry.state.putTask(taskRow('a', { queuePosition: 2, queueReason: 'no idle agent' }));
    ports.registry.state.putTask(taskRow('b', { queuePosition: 1, queueReason: 'no idle agent' }));
    ports.registry.state.putTask(taskRow('c', { state: 'running', agent: 'shell-1', attempt: 1 }));
    ports.emit({ actor: 'supervisor', action: 'task.assign', object: 'task:c', details: { agent: 'shell-1', attempt: 1 } });
    const ids = async (query: string) => (await app.inject({ url: `/api/v1/tasks${query}`, headers: viewer })).json<{ tasks: { id: string }[] }>().tasks.map((t) => t.id);
    expect(await ids('')).toEqual(['a', 'b', 'c']);
    expect(await ids('?waiting=true')).toEqual(['b', 'a']);
    expect(await ids('?state=running')).toEqual(['c']);
    expect(await ids('?agent=shell-1')).toEqual(['c']);
    const all = await app.inject({ url: '/api/v1/tasks', headers: viewer });
    expect(all.json()).toMatchObject({ tasks: [{ id: 'a', title: 'Title of a', column: 'ready', queuePosition: 2, queueReason: 'no idle agent' }, {}, { id: 'c', column: 'doing' }] });
    expect((await app.inject({ url: '/api/v1/tasks?state=bogus', headers: viewer })).statusCode).toBe(400);

    const c = await app.inject({ url: '/api/v1/tasks/c', headers: viewer });
    expect(c.statusCode).toBe(200);
    expect(c.json()).toMatchObject({ id: 'c', state: 'running', title: 'Title of c', traceId: null, output: '', executions: [], audit: [{ action: 'task.assign', object: 'task:c' }] });
    expect((await app.inject({ url: '/api/v1/tasks/zzz', headers: viewer })).statusCode).toBe(404);
  });

  test('executions filter by task, agent, template and outcome, newest first, with a limit', async () => {
    const { app, ports, viewer } = await testApp();
    for (const [id, agent, ms] of [['a', 'shell-1', 2_000], ['b', 'shell-2', 3_000], ['c', 'reporter-1', 4_000]] as const) {
      ports.registry.state.putTask(taskRow(id, { state: 'running', attempt: 1, agent }));
      ports.registry.state.addAssignment(id, 1, agent, ms, 1_000);
    }
    ports.registry.state.finishAssignment('a', 1, { outcome: 'succeeded', exitCode: 0, summary: 'ok', outputs: [] }, 5_000);
    const tasks = async (query: string) =>
      (await app.inject({ url: `/api/v1/executions${query}`, headers: viewer })).json<{ executions: { taskId: string }[] }>().executions.map((e) => e.taskId);
    expect(await tasks('')).toEqual(['c', 'b', 'a']);
    expect(await tasks('?task=b')).toEqual(['b']);
    expect(await tasks('?agent=shell-1')).toEqual(['a']);
    expect(await tasks('?template=shell')).toEqual(['b', 'a']);
    expect(await tasks('?outcome=succeeded')).toEqual(['a']);
    expect(await tasks('?since=3000')).toEqual(['c', 'b']);
    expect(await tasks('?limit=1')).toEqual(['c']);
    const bad = await app.inject({ url: '/api/v1/executions?limit=0', headers: viewer });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ message: string }>().message).toMatch(/querystring\/limit/);
  });

  test('the audit trail pages with filters, verifies and exports as JSON lines', async () => {
    const { app, ports, viewer } = await testApp();
    for (let i = 0; i < 5; i += 1) ports.emit({ actor: 'supervisor', action: i % 2 === 0 ? 'task.assign' : 'agent.start', object: `task:t${i}` });
    const page = await app.inject({ url: '/api/v1/audit?action=task.*&limit=2', headers: viewer });
    expect(page.statusCode).toBe(200);
    const first = page.json<{ rows: { seq: number; action: string }[]; next: number; more: boolean }>();
    expect(first.rows.map((r) => r.action)).toEqual(['task.assign', 'task.assign']);
    expect(first.more).toBe(true);
    const second = (await app.inject({ url: `/api/v1/audit?action=task.*&limit=2&after=${first.next}`, headers: viewer })).json<{ rows: unknown[]; more: boolean }>();
    expect(second.rows).toHaveLength(1);
    const newest = (await app.inject({ url: '/api/v1/audit?limit=1&newest=true&decision=none', headers: viewer })).json<{ rows: { object: string }[] }>();
    expect(newest.rows).toEqual([expect.objectContaining({ object: 'task:t4' })]);

    const verify = await app.inject({ url: '/api/v1/audit/verify', headers: viewer });
    expect(verify.json()).toMatchObject({ ok: true });

    const exported = await app.inject({ url: '/api/v1/audit/export?action=agent.*', headers: viewer });
    expect(exported.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = exported.body.trim().split('\n').map((l) => JSON.parse(l) as { action: string; hash: string });
    expect(lines.map((l) => l.action)).toEqual(['agent.start', 'agent.start']);
    expect(lines[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await app.inject({ url: '/api/v1/audit?decision=maybe', headers: viewer })).statusCode).toBe(400);
  });

  test('messages, analytics, the OpenAPI document and metrics', async () => {
    const { app, ports, viewer } = await testApp();
    ports.emit({ actor: 'shell-1', action: 'policy.decide', object: 'agent:shell-2', decision: 'allow', details: { sub: 'shell-1', act: 'message', rule: null } });
    expect((await app.inject({ url: '/api/v1/messages', headers: viewer })).json()).toMatchObject({ messages: [{ from: 'shell-1', to: 'shell-2', topic: '', allowed: true }], edges: [] });
    expect((await app.inject({ url: '/api/v1/analytics?since=0&bucketMs=60000', headers: viewer })).json()).toMatchObject({ total: { executions: 0 }, rates: { success: 0 } });
    const openapi = (await app.inject({ url: '/api/v1/openapi.json', headers: viewer })).json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(openapi.openapi).toMatch(/^3\./);
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/api/v1/agents', '/api/v1/tasks/{id}', '/api/v1/agents/{name}/stop', '/api/v1/events']));
    const metrics = await app.inject({ url: '/metrics', headers: viewer });
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0.0.4/);
    expect(metrics.body).toMatch(/^warren_audit_rows \d+$/m);
  });
});

describe('faults', () => {
  test("a port's fault is a 500 that says no more, logged through the Warren logger", async () => {
    const lines: { level: string; obj: object; msg: string | undefined; bindings: Record<string, unknown> }[] = [];
    const logger = (bindings: Record<string, unknown>): Logger => ({
      trace: (obj, msg) => lines.push({ level: 'trace', obj, msg, bindings }),
      debug: (obj, msg) => lines.push({ level: 'debug', obj, msg, bindings }),
      info: (obj, msg) => lines.push({ level: 'info', obj, msg, bindings }),
      warn: (obj, msg) => lines.push({ level: 'warn', obj, msg, bindings }),
      error: (obj, msg) => lines.push({ level: 'error', obj, msg, bindings }),
      child: (more) => logger({ ...bindings, ...more }),
    });
    const { app, ports, viewer } = await testApp({ logger: logger({}) });
    ports.board = () => Promise.reject(new Error('board mirror exploded at /secret/path'));
    const res = await app.inject({ url: '/api/v1/board', headers: viewer });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal', message: 'internal error' });
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', msg: 'request failed', bindings: expect.objectContaining({ component: 'http' }) as unknown }));
  });
});

describe('faults of the policy', () => {
  test('an authorizer that throws (the audit trail failing) is a 500, and the request goes no further', async () => {
    const { app, ports, operator } = await testApp();
    ports.registry.state.putTask(taskRow('t1'));
    ports.authorizer.authorize = () => {
      throw new Error('disk I/O error');
    };
    const res = await app.inject({ method: 'POST', url: '/api/v1/tasks/t1/cancel', headers: operator });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal', message: 'internal error' });
    expect(ports.registry.commands.queued()).toEqual([]);
  });
});

describe('action routes', () => {
  test('each agent and task action queues its command for the principal, asks for a tick and answers 202', async () => {
    const { app, ports, operator } = await testApp();
    ports.registry.state.putAgent({ name: 'shell-1', template: 'shell', uid: 1_900_000_001, state: 'running', pid: 1, startedMs: 1, stoppedMs: null, lastExit: null });
    ports.registry.state.putTask(taskRow('t1'));
    const cases = [
      ['POST', '/api/v1/agents/shell/start', CommandKind.agentStart, 'shell'],
      ['POST', '/api/v1/agents/shell-1/stop', CommandKind.agentStop, 'shell-1'],
      ['POST', '/api/v1/agents/shell-1/restart', CommandKind.agentRestart, 'shell-1'],
      ['POST', '/api/v1/agents/shell-1/sleep', CommandKind.agentSleep, 'shell-1'],
      ['POST', '/api/v1/agents/shell-1/wake', CommandKind.agentWake, 'shell-1'],
      ['DELETE', '/api/v1/agents/shell-1', CommandKind.agentDelete, 'shell-1'],
      ['POST', '/api/v1/tasks/t1/cancel', CommandKind.taskCancel, 't1'],
      ['POST', '/api/v1/tasks/t1/retry', CommandKind.taskRetry, 't1'],
    ] as const;
    for (const [method, url, kind, target] of cases) {
      const res = await app.inject({ method, url, headers: operator });
      expect(res.statusCode, url).toBe(202);
      const id = res.json<{ command: number }>().command;
      expect(ports.registry.commands.get(id)).toMatchObject({ kind, target, requestedBy: 'user:olga', state: 'queued' });
      const read = await app.inject({ url: `/api/v1/commands/${id}`, headers: operator });
      expect(read.json()).toMatchObject({ id, kind, target, state: 'queued', outcome: null });
    }
    expect(ports.ticks).toBe(cases.length);
    expect((await app.inject({ url: '/api/v1/commands/9999', headers: operator })).statusCode).toBe(404);
  });

  test('an action on an unknown agent, template or task is 404 and queues nothing', async () => {
    const { app, ports, operator } = await testApp();
    for (const [method, url] of [
      ['POST', '/api/v1/agents/nope/start'],
      ['POST', '/api/v1/agents/nope-1/stop'],
      ['DELETE', '/api/v1/agents/nope-1'],
      ['POST', '/api/v1/tasks/nope/retry'],
    ] as const) {
      expect((await app.inject({ method, url, headers: operator })).statusCode, url).toBe(404);
    }
    expect(ports.registry.commands.queued()).toEqual([]);
  });

  test('creating a task writes it through the port: 201, then 409 for the same id, 400 naming a bad field', async () => {
    const { app, ports, operator } = await testApp();
    const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: operator, payload: { title: 'Count lines', body: 'wc -l', priority: 'high', capabilities: ['shell'] } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: 'count-lines', path: 'count-lines.md' });
    expect(ports.ticks).toBe(1);
    expect(readFileSync(join(ports.dir, 'kanban', 'count-lines.md'), 'utf8')).toMatch(/^title: Count lines$/m);
    const again = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: operator, payload: { title: 'Count lines' } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: 'conflict', code: 'WARREN_TASK_EXISTS' });
    const bad = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: operator, payload: { title: 'x', capabilities: ['has space'] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: string; message: string }>()).toMatchObject({ error: 'invalid_request', message: expect.stringMatching(/body\/capabilities/) as unknown });
    const extra = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: operator, payload: { title: 'x', owner: 'me' } });
    expect(extra.statusCode).toBe(400);
  });
});

describe('sessions and the dashboard', () => {
  test('a browser signs in with a token, is known by its cookie, and signs out', async () => {
    const { app, operator } = await testApp();
    const token = operator.authorization.slice('Bearer '.length);
    const signIn = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { token } });
    expect(signIn.statusCode).toBe(204);
    const cookie = signIn.cookies.find((c) => c.name === SESSION_COOKIE)!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie.value).not.toContain(token);
    const cookies = { [SESSION_COOKIE]: cookie.value };
    expect((await app.inject({ url: '/api/v1/session', cookies })).json()).toEqual({ name: 'olga', role: 'operator', expiresMs: expect.any(Number) as unknown });
    expect((await app.inject({ url: '/api/v1/agents', cookies })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: '/api/v1/session', cookies })).statusCode).toBe(204);
    expect((await app.inject({ url: '/api/v1/agents', cookies })).statusCode).toBe(401);
    expect((await app.inject({ url: '/api/v1/session', cookies })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/api/v1/session', payload: { token: 'wrn_nope' } })).statusCode).toBe(401);
  });

  test('the sign-in link sets the cookie and redirects to the dashboard', async () => {
    const { app, viewer } = await testApp();
    const token = viewer.authorization.slice('Bearer '.length);
    const res = await app.inject({ url: `/signin?token=${token}` });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/');
    const cookie = res.cookies.find((c) => c.name === SESSION_COOKIE)!;
    expect((await app.inject({ url: '/api/v1/status', cookies: { [SESSION_COOKIE]: cookie.value } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/signin?token=wrn_expired' })).statusCode).toBe(401);
  });

  test('without a built dashboard, / says so and the API still answers', async () => {
    const { app, viewer } = await testApp({ staticDir: join(tmpdir(), 'no-such-dashboard') });
    const res = await app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/dashboard is not built/);
    expect((await app.inject({ url: '/assets/app.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/api/v1/status', headers: viewer })).statusCode).toBe(200);
  });

  test('the built dashboard is served with a strict content policy and long caching for hashed assets only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/app-3f2a9c1b.js"></script>');
    writeFileSync(join(dir, 'assets', 'app-3f2a9c1b.js'), 'console.log(1)');
    writeFileSync(join(dir, 'assets', 'logo.svg'), '<svg/>');
    const { app } = await testApp({ staticDir: dir });
    const bare = await testApp();
    const keys = (routes: readonly RouteInfo[]) => routes.map((r) => `${r.method} ${r.url} ${String(r.public)}`).sort();
    expect(keys(routesOf(app))).toEqual(keys(routesOf(bare.app)));
    const index = await app.inject({ url: '/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    const csp = String(index.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/https?:|\*|unsafe-eval|script-src[^;]*unsafe-inline/);
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    const asset = await app.inject({ url: '/assets/app-3f2a9c1b.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await app.inject({ url: '/assets/logo.svg' })).headers['cache-control']).toBe('no-cache');
    expect((await app.inject({ url: '/assets/missing.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/assets/../index.html' })).statusCode).toBeLessThan(500);
  });
});
