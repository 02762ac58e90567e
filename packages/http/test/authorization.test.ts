import type { InjectOptions } from 'fastify';
import { describe, expect, test } from 'vitest';
import { routesOf } from '@warren/http';
import { testApp, type TestApp } from './app-support.js';
import { agentItem, taskRow } from './support.js';

/**
 * Every route and who may call it: `public` (decided for user:anonymous), `read` (viewers and
 * operators), `action` (operators only). A route the app registers that is missing here fails the
 * first test, so a new route cannot go without its row in the matrix.
 */
const MATRIX: Record<string, 'public' | 'read' | 'action'> = {
  'POST /api/v1/session': 'public',
  'DELETE /api/v1/session': 'public',
  'GET /api/v1/session': 'public',
  'GET /signin': 'public',
  'GET /': 'public',
  'GET /assets/*': 'public',
  'HEAD /assets/*': 'public',
  'GET /api/v1/status': 'read',
  'GET /api/v1/agents': 'read',
  'GET /api/v1/agents/:name': 'read',
  'GET /api/v1/agents/:name/log': 'read',
  'GET /api/v1/accounts': 'read',
  'GET /api/v1/templates': 'read',
  'GET /api/v1/board': 'read',
  'GET /api/v1/tasks': 'read',
  'GET /api/v1/tasks/:id': 'read',
  'GET /api/v1/executions': 'read',
  'GET /api/v1/audit': 'read',
  'GET /api/v1/audit/verify': 'read',
  'GET /api/v1/audit/export': 'read',
  'GET /api/v1/messages': 'read',
  'GET /api/v1/schedules': 'read',
  'GET /api/v1/nodes': 'read',
  'GET /api/v1/analytics': 'read',
  'GET /api/v1/usage': 'read',
  'GET /api/v1/commands/:id': 'read',
  'GET /api/v1/events': 'read',
  'GET /api/v1/openapi.json': 'read',
  'GET /metrics': 'read',
  'POST /api/v1/agents/:name/start': 'action',
  'POST /api/v1/agents/:name/stop': 'action',
  'POST /api/v1/agents/:name/restart': 'action',
  'POST /api/v1/agents/:name/sleep': 'action',
  'POST /api/v1/agents/:name/wake': 'action',
  'DELETE /api/v1/agents/:name': 'action',
  'POST /api/v1/tasks/:id/cancel': 'action',
  'POST /api/v1/tasks/:id/retry': 'action',
  'POST /api/v1/tasks': 'action',
};

/** A request for the route `key` with its parameters filled and a valid body. */
function requestFor(key: string, headers: Record<string, string>): InjectOptions {
  const token = (headers.authorization ?? 'Bearer wrn_x').slice('Bearer '.length);
  const [method, pattern] = key.split(' ') as [NonNullable<InjectOptions['method']>, string];
  const url = pattern
    .replace(':name/start', 'shell/start')
    .replace(':name', 'shell-1')
    .replace('commands/:id', 'commands/1')
    .replace(':id', 't1')
    .replace('*', 'app.js');
  const query = pattern === '/signin' ? `?token=${token}` : '';
  const body = key === 'POST /api/v1/tasks' ? { title: 'A new task' } : key === 'POST /api/v1/session' ? { token } : undefined;
  return { method, url: url + query, headers, ...(body !== undefined ? { payload: body } : {}) };
}

async function seeded(): Promise<TestApp> {
  const t = await testApp();
  t.ports.agentItems = [agentItem('shell-1')];
  t.ports.registry.state.putAgent({ name: 'shell-1', template: 'shell', uid: 1_900_000_001, state: 'running', pid: 1, startedMs: 1, stoppedMs: null, lastExit: null });
  t.ports.registry.state.putTask(taskRow('t1'));
  t.ports.registry.commands.enqueue('agent.stop', 'shell-1', 'user:root', 1);
  return t;
}

const keysOf = (t: TestApp) => routesOf(t.app).map((r) => `${r.method} ${r.url}`);

describe('authorization matrix', () => {
  test('every registered route has a row in the matrix, and every row a route', async () => {
    const t = await testApp();
    const registered = keysOf(t);
    expect(new Set(registered).size).toBe(registered.length);
    expect([...registered].sort()).toEqual(Object.keys(MATRIX).sort());
    for (const route of routesOf(t.app)) expect(route.public, `${route.method} ${route.url}`).toBe(MATRIX[`${route.method} ${route.url}`] === 'public');
  });

  test('without a token every non-public route is 401; public routes are decided for user:anonymous', async () => {
    const t = await seeded();
    for (const key of keysOf(t)) {
      const res = await t.app.inject(requestFor(key, {}));
      if (MATRIX[key] === 'public') expect(res.statusCode, key).not.toBe(403);
      else {
        expect(res.statusCode, key).toBe(401);
        expect(res.json(), key).toMatchObject({ error: 'unauthorized' });
      }
    }
    const anonymous = t.ports.registry.auditPage({ filter: { actor: 'user:anonymous', action: 'policy.decide' }, limit: 1000 }).rows;
    expect(new Set(anonymous.map((r) => r.object))).toEqual(new Set(Object.keys(MATRIX).filter((k) => MATRIX[k] === 'public').map((k) => `api:${k.split(' ')[1]!}`)));
    expect(anonymous.every((r) => r.decision === 'allow')).toBe(true);
  });

  test('an invalid, revoked or expired token is 401', async () => {
    const t = await seeded();
    const expiring = t.ports.tokens.create({ name: 'brief', role: 'operator', expiresMs: Date.now() + 60_000 }, Date.now()).token;
    const revoked = t.ports.tokens.create({ name: 'gone', role: 'operator' }, Date.now()).token;
    t.ports.tokens.revoke('gone', Date.now());
    const later = await testApp({ now: () => Date.now() + 120_000 });
    const expiredOnLater = later.ports.tokens.create({ name: 'brief', role: 'operator', expiresMs: Date.now() + 60_000 }, Date.now()).token;
    for (const authorization of [`Bearer wrn_${'A'.repeat(43)}`, `Bearer ${revoked}`, 'Basic dXNlcjpwYXNz', 'Bearer']) {
      expect((await t.app.inject({ url: '/api/v1/status', headers: { authorization } })).statusCode, authorization).toBe(401);
    }
    expect((await t.app.inject({ url: '/api/v1/status', headers: { authorization: `Bearer ${expiring}` } })).statusCode).toBe(200);
    expect((await later.app.inject({ url: '/api/v1/status', headers: { authorization: `Bearer ${expiredOnLater}` } })).statusCode).toBe(401);
  });

  test('a viewer reads every read route and is refused every action route with 403 naming the rule', async () => {
    const t = await seeded();
    for (const key of keysOf(t)) {
      if (key === 'GET /api/v1/events') continue; // a stream that does not end: served in the real-port test
      const res = await t.app.inject(requestFor(key, t.viewer));
      if (MATRIX[key] === 'action') {
        expect(res.statusCode, key).toBe(403);
        const method = key.split(' ')[0]!;
        expect(res.json(), key).toEqual({
          error: 'forbidden',
          message: `policy denies user:vera ${method} on api:${key.split(' ')[1]!}`,
          rule: `p, role:viewer, api:/api/v1/*, ${method}, deny`,
        });
      } else {
        expect([401, 403], key).not.toContain(res.statusCode);
        expect(res.statusCode, key).toBeLessThan(500);
      }
    }
  });

  test('an operator may call every route', async () => {
    const t = await seeded();
    for (const key of keysOf(t)) {
      if (key === 'GET /api/v1/events') continue;
      const res = await t.app.inject(requestFor(key, t.operator));
      expect([401, 403], key).not.toContain(res.statusCode);
      expect(res.statusCode, key).toBeLessThan(500);
    }
    const decided = t.ports.registry.auditPage({ filter: { actor: 'user:olga', action: 'policy.decide' }, limit: 1000 }).rows;
    expect(decided.every((r) => r.decision === 'allow')).toBe(true);
    expect(decided.length).toBeGreaterThanOrEqual(Object.values(MATRIX).filter((v) => v !== 'public').length - 1);
  });

  test('a foreign Origin or Host is 403 on every route, before any authorization', async () => {
    const t = await seeded();
    const before = t.ports.audit.lastSeq();
    for (const key of keysOf(t)) {
      for (const headers of [
        { ...t.operator, origin: 'http://evil.example' },
        { ...t.operator, origin: 'null' },
        { ...t.operator, host: 'evil.example' },
        { ...t.operator, host: 'evil.example:80' },
      ]) {
        const res = await t.app.inject(requestFor(key, headers));
        expect(res.statusCode, `${key} ${JSON.stringify(headers)}`).toBe(403);
        if (!key.startsWith('HEAD ')) expect(res.json(), key).toMatchObject({ error: 'forbidden_origin' });
      }
    }
    expect(t.ports.audit.lastSeq()).toBe(before);
    expect((await t.app.inject({ url: '/api/v1/status', headers: { ...t.viewer, origin: 'http://localhost:80' } })).statusCode).toBe(200);
  });

  test('a token name reused with another role after a revoke has only its new role', async () => {
    const t = await seeded();
    const first = t.ports.tokens.create({ name: 'sam', role: 'operator' }, Date.now()).token;
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tasks/t1/cancel', headers: { authorization: `Bearer ${first}` } })).statusCode).toBe(202);
    const second = t.ports.tokens.create({ name: 'sam', role: 'viewer', replace: true }, Date.now()).token;
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tasks/t1/cancel', headers: { authorization: `Bearer ${first}` } })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tasks/t1/cancel', headers: { authorization: `Bearer ${second}` } })).statusCode).toBe(403);
  });
});
