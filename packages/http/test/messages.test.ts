import { describe, expect, test } from 'vitest';
import { MessageLedger } from '@warren/registry';
import { testApp } from './app-support.js';

type Body = {
  messages: { seq: number; from: string; to: string; topic: string; allowed: boolean }[];
  edges: { from: string; to: string; topic: string; count: number; denied: number; bytes: number; firstMs: number; lastMs: number }[];
};

describe('GET /api/v1/messages', () => {
  test("answers the ledger's edges (direct and topic, with denied counts and bytes) and the recent decisions, filtered by agent and since", async () => {
    const t = await testApp();
    const empty = await t.app.inject({ url: '/api/v1/messages', headers: t.viewer });
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toEqual({ messages: [], edges: [] });

    const ledger = new MessageLedger(t.ports.db);
    ledger.record({ from: 'planner-1', to: 'coder-1', topic: '', bytes: 120, allowed: true, timeMs: 10_000 });
    ledger.record({ from: 'planner-1', to: 'coder-1', topic: '', bytes: 80, allowed: true, timeMs: 12_000 });
    ledger.record({ from: 'coder-1', to: 'planner-1', topic: '', bytes: 30, allowed: false, timeMs: 13_000 });
    ledger.record({ from: 'coder-1', to: '*', topic: 'builds', bytes: 64, allowed: true, timeMs: 20_000 });
    t.ports.emit({ actor: 'planner-1', action: 'policy.decide', object: 'agent:coder-1', decision: 'allow', details: { sub: 'planner-1', act: 'message', rule: null } });
    t.ports.emit({ actor: 'coder-1', action: 'policy.decide', object: 'topic:builds', decision: 'allow', details: { sub: 'coder-1', act: 'publish', rule: null } });

    const res = await t.app.inject({ url: '/api/v1/messages', headers: t.viewer });
    expect(res.statusCode).toBe(200);
    const body = res.json<Body>();
    expect(body.edges).toEqual([
      { from: 'planner-1', to: 'coder-1', topic: '', count: 2, denied: 0, bytes: 200, firstMs: 10_000, lastMs: 12_000 },
      { from: 'coder-1', to: '*', topic: 'builds', count: 1, denied: 0, bytes: 64, firstMs: 20_000, lastMs: 20_000 },
      { from: 'coder-1', to: 'planner-1', topic: '', count: 1, denied: 1, bytes: 0, firstMs: 13_000, lastMs: 13_000 },
    ]);
    expect(body.messages.map((m) => [m.from, m.to, m.topic, m.allowed])).toEqual([
      ['coder-1', '*', 'builds', true],
      ['planner-1', 'coder-1', '', true],
    ]);

    const get = async (query: string) => (await t.app.inject({ url: `/api/v1/messages${query}`, headers: t.viewer })).json<Body>();
    expect((await get('?since=12500')).edges.map((e) => `${e.from}>${e.to}:${e.topic}`)).toEqual(['coder-1>*:builds', 'coder-1>planner-1:']);
    expect((await get('?agent=planner-1')).edges.map((e) => `${e.from}>${e.to}`)).toEqual(['planner-1>coder-1', 'coder-1>planner-1']);
    expect((await get('?agent=planner-1')).messages.map((m) => m.from)).toEqual(['planner-1']);
    expect((await get('?limit=1')).messages).toHaveLength(1);
    expect((await get('?limit=1')).edges).toHaveLength(3);
  });

  test('needs a token and answers 400 for a bad filter', async () => {
    const t = await testApp();
    expect((await t.app.inject({ url: '/api/v1/messages' })).statusCode).toBe(401);
    const bad = await t.app.inject({ url: '/api/v1/messages?since=yesterday', headers: t.viewer });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_request', message: expect.stringMatching(/since/) as unknown });
    expect((await t.app.inject({ url: '/api/v1/messages?limit=0', headers: t.viewer })).statusCode).toBe(400);
  });
});
