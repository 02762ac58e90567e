import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { silentLogger } from '@warren/core';
import { Agent, fetch as undiciFetch } from 'undici';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';
import { openDatabase } from '@warren/store';
import { makeTempDir, startFakeLlm, type FakeLlm, type StartFakeLlmOptions } from '@warren/testing';
import {
  LLM_SOCKET_NAME,
  LlmGateway,
  type AgentLlmAccess,
  type LlmGatewayOptions,
  type LlmProvider,
  type LlmRefusal,
  type LlmUnavailable,
  type ServedSocket,
} from '@warren/llm-gateway';

/** The key the providers hold; the fake server refuses every other. */
export const PROVIDER_KEY = 'sk-provider-real-key-0123456789';
/** What an agent sends as its key (the placeholder runtimes give CLIs, or anything else). */
export const AGENT_KEY = 'warren-gateway';

/** One gateway serving one agent over a real Unix socket, a fake provider behind it, a real SQLite ledger. */
export interface GatewayFixture {
  readonly fake: FakeLlm;
  readonly gateway: LlmGateway;
  readonly socket: ServedSocket;
  readonly ledger: UsageLedger;
  /** Rows reported through `reports.call`, in order. */
  readonly calls: LlmUsageRow[];
  /** Refusals reported through `reports.refused`, in order. */
  readonly refusals: LlmRefusal[];
  /** Failures reported through `reports.unavailable`, in order. */
  readonly unavailable: LlmUnavailable[];
  /** An undici dispatcher that connects to the agent's socket: what the runner's pipe gives a CLI. */
  readonly dispatcher: Agent;
  /** `fetch` over the socket, for SDKs: URLs are `http://localhost/…`. */
  readonly fetch: typeof undiciFetch;
  /** Sends a request over the socket and reads the whole answer. */
  send(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<SentRequest>;
  /** The task the agent runs, as `currentTask()` returns it; tests change it. */
  task: { taskId: string; attempt: number; deadlineMs: number } | null;
}

/** An answer read in full. */
export interface SentRequest {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json(): unknown;
}

/** Providers on the fake server, one per wire, each mapping `small` to a priced upstream model. */
export function fakeProviders(fake: FakeLlm): LlmProvider[] {
  const common = {
    apiKey: PROVIDER_KEY,
    models: { small: 'fake-small-2026' },
    prices: { 'fake-small-2026': { input: 2, output: 10 } },
  };
  return [
    { name: 'openai', baseUrl: `${fake.url}/v1`, wireApi: 'openai-chat', ...common },
    { name: 'openai-responses', baseUrl: `${fake.url}/v1`, wireApi: 'openai-responses', ...common },
    { name: 'anthropic', baseUrl: fake.url, wireApi: 'anthropic-messages', ...common },
    { name: 'forbidden', baseUrl: `${fake.url}/v1`, wireApi: 'openai-chat', ...common },
  ];
}

/**
 * Starts the fixture; everything is closed (and the temp dir removed) when the test finishes.
 * @param options.access overrides of the agent's access (default: agent coder-1 of template coder,
 *   allowed openai, openai-responses and anthropic, no budgets, running task t1 attempt 1 with a
 *   deadline 60 s away).
 */
export async function startGateway(
  options: {
    script?: StartFakeLlmOptions['script'];
    fake?: Omit<StartFakeLlmOptions, 'script'>;
    gateway?: Partial<LlmGatewayOptions>;
    access?: Partial<AgentLlmAccess>;
  } = {},
): Promise<GatewayFixture> {
  // Closed in reverse order of start, whatever order vitest runs its hooks in.
  const closers: (() => unknown)[] = [];
  onTestFinished(async () => {
    for (const close of closers.reverse()) await close();
  });
  const dir = await makeTempDir('warren-llm-gateway-');
  closers.push(() => dir.close());
  const fake = await startFakeLlm({ apiKey: PROVIDER_KEY, ...options.fake, script: options.script ?? [] });
  closers.push(() => fake.close());
  const db = openDatabase(join(dir.path, 'warren.db'));
  closers.push(() => db.close());
  const ledger = new UsageLedger(db);
  const calls: LlmUsageRow[] = [];
  const refusals: LlmRefusal[] = [];
  const unavailable: LlmUnavailable[] = [];
  const gateway = LlmGateway.create({
    providers: fakeProviders(fake),
    ledger,
    reports: {
      call: (row) => calls.push(row),
      refused: (refusal) => refusals.push(refusal),
      unavailable: (failure) => unavailable.push(failure),
    },
    logger: silentLogger,
    retry: { initialDelayMs: 50, maxDelayMs: 400, headersTimeoutMs: 10_000 },
    ...options.gateway,
  });
  closers.push(() => gateway.close());
  const fixture = {
    task: { taskId: 't1', attempt: 1, deadlineMs: Date.now() + 60_000 },
  } as GatewayFixture;
  const access: AgentLlmAccess = {
    agent: 'coder-1',
    template: 'coder',
    providers: ['openai', 'openai-responses', 'anthropic'],
    budgets: { template: {}, agent: {} },
    currentTask: () => fixture.task,
    ...options.access,
  };
  const socket = await gateway.serve(access, join(dir.path, LLM_SOCKET_NAME));
  closers.push(() => socket.close());
  const dispatcher = new Agent({ connect: { socketPath: socket.socketPath } });
  closers.push(() => dispatcher.destroy());
  const fetch: typeof undiciFetch = (input, init) => undiciFetch(input, { ...init, dispatcher });
  const send: GatewayFixture['send'] = async (path, init = {}) => {
    const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    // The dispatcher's own request sends `path` as written (no URL normalisation of `..`).
    const response = await dispatcher.request({
      origin: 'http://localhost',
      path,
      method: (init.method ?? (body === undefined ? 'GET' : 'POST')),
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...init.headers },
      body,
    });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) as unknown };
  };
  return Object.assign(fixture, { fake, gateway, socket, ledger, calls, refusals, unavailable, dispatcher, fetch, send });
}

/** A request body of `wire` asking model `small` for a reply, streamed or not. */
export function modelRequest(wire: LlmProvider['wireApi'], stream: boolean): { path: string; body: Record<string, unknown> } {
  switch (wire) {
    case 'openai-chat':
      return { path: '/p/openai/chat/completions', body: { model: 'small', stream, messages: [{ role: 'user', content: 'hello' }] } };
    case 'openai-responses':
      return { path: '/p/openai-responses/responses', body: { model: 'small', stream, input: 'hello' } };
    case 'anthropic-messages':
      return { path: '/p/anthropic/v1/messages', body: { model: 'small', stream, max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] } };
  }
}
