import { chmod, chown, lstat, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '@warren/core';
import type { LlmUsageRow, UsageLedger } from '@warren/registry';
import { checkBudgets, type LlmBudget } from './budgets.js';
import { LlmGatewayError } from './errors.js';
import { agentResponseHeaders, mcpRequestHeaders, providerRequestHeaders } from './headers.js';
import { costUsd, indexProviders, upstreamUrl, type LlmProvider } from './providers.js';
import { backoffDelayMs, DEFAULT_RETRY, RETRYABLE_STATUSES, retryAfterMs, type RetryOptions } from './retry.js';
import { UsageMeter } from './usage-meter.js';
import { describeConnectError, formatSeconds, headerValue, pipeToAgent, prepareBody, providerMessage, readBody, sendPlainError, sendWireError } from './answers.js';

/** The execution an agent is running, as the supervisor knows it. */
export interface CurrentTask {
  readonly taskId: string;
  readonly attempt: number;
  /** When the execution times out, in ms since the epoch (the gateway's clock): retries stop before it. */
  readonly deadlineMs: number;
}

/**
 * What one agent may do through its gateway socket. Fixed when the socket is served; the agent's
 * identity is the socket it connects to, never anything in a request.
 */
export interface AgentLlmAccess {
  readonly agent: string;
  readonly template: string;
  /** Names of the providers this agent may call (its allow-list). */
  readonly providers: readonly string[];
  /** The template's budgets (task budgets apply to each execution, day budgets to all its agents) and the agent's own. */
  readonly budgets: { readonly template: LlmBudget; readonly agent: LlmBudget };
  /** The running execution, for per-task accounting and the retry deadline; null between tasks. Must not throw. */
  currentTask(): CurrentTask | null;
  /** The agent's own bearer token for `/mcp` (its principal is the agent's name; see `createAgentToken` of `@warren/http`); absent, `/mcp` is refused. Never logged. */
  readonly mcpToken?: string;
  /**
   * Keys of this agent by provider name (gateway secrets scoped to the agent or its template), used
   * instead of the provider's own `apiKey`. Never logged, never sent to the agent.
   */
  readonly apiKeys?: Readonly<Record<string, string>>;
}

/**
 * Why the gateway refused a request:
 * - `provider_not_allowed`: the provider is not configured or not in the agent's allow-list (403);
 * - `provider_key_missing`: neither the agent's access nor the provider holds a key for it (403);
 * - `unknown_route`: neither `/p/<provider>/…` nor `/mcp` (404), or a path leaving the base URL (400);
 * - `budget_exceeded`: a token or cost budget is used up (429); the supervisor stops the task;
 * - `mcp_not_allowed`: `/mcp` asked for while the agent has no MCP token or no MCP endpoint is set (403).
 */
export const RefusalReason = {
  providerNotAllowed: 'provider_not_allowed',
  keyMissing: 'provider_key_missing',
  unknownRoute: 'unknown_route',
  budgetExceeded: 'budget_exceeded',
  mcpNotAllowed: 'mcp_not_allowed',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** A request the gateway refused, for the audit trail (and, for budgets, to stop the task). */
export interface LlmRefusal {
  readonly agent: string;
  readonly template: string;
  /** The execution running when the agent asked, or null. */
  readonly taskId: string | null;
  readonly attempt: number | null;
  /** The provider named in the path, or null when the path names none. */
  readonly provider: string | null;
  /** Method and path of the request, without its query: `POST /p/openai/chat/completions`. */
  readonly path: string;
  readonly reason: RefusalReason;
  /** A sentence saying why: "task token budget of 50000 reached: 50213 used (agent coder-1)". */
  readonly detail: string;
}

/** A provider that kept failing until the task's deadline left no room for another attempt. */
export interface LlmUnavailable {
  readonly agent: string;
  readonly template: string;
  readonly taskId: string | null;
  readonly attempt: number | null;
  readonly provider: string;
  /** The status the agent got: the provider's last, or 502 (no connection) / 504 (no headers). */
  readonly status: number;
  /** How many times the request was sent. */
  readonly attempts: number;
  /** "provider anthropic: 503 (Overloaded) after 4 attempts in 9.1 s": also the agent's error message. */
  readonly detail: string;
}

/**
 * What the gateway tells the supervisor. None may throw (a throw is logged and ignored).
 * - `call`: one LLM call ended (its row is already in the ledger): for the event, audit and metrics;
 * - `refused`: a request was refused (not in the ledger): for the audit, and on `budget_exceeded`
 *   to stop the task with `detail` as its reason;
 * - `unavailable` (optional): the provider failed every attempt (the call is also in the ledger
 *   and reported by `call`, with that status): a reason for the card if the task then fails.
 */
export interface GatewayReports {
  call(row: LlmUsageRow): void;
  refused(refusal: LlmRefusal): void;
  unavailable?(failure: LlmUnavailable): void;
}

/** Options of {@link LlmGateway.create}. */
export interface LlmGatewayOptions {
  readonly providers: readonly LlmProvider[];
  /** Where each call is recorded, and budgets are summed from. */
  readonly ledger: UsageLedger;
  readonly reports: GatewayReports;
  /** The supervisor's MCP endpoint, `http://127.0.0.1:7070/mcp`; absent, `/mcp` is refused. */
  readonly mcpUrl?: string;
  readonly logger: Logger;
  /** Overrides of {@link DEFAULT_RETRY}. */
  readonly retry?: Partial<RetryOptions>;
  /** Largest request body accepted from an agent, in bytes. Default 8 MiB. */
  readonly bodyLimitBytes?: number;
  /** Wall clock in ms since the epoch. Default `Date.now`. */
  readonly clock?: () => number;
  /** Random numbers in [0, 1) for the backoff's jitter. Default `Math.random`. */
  readonly random?: () => number;
}

/** Options of {@link LlmGateway.serve}. */
export interface ServeOptions {
  /** Owner given to the socket file (mode 0660), so only that agent (and root) can connect. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

/** One agent's gateway socket. */
export interface ServedSocket {
  readonly socketPath: string;
  /**
   * Stops listening, aborts the requests in flight (their answers end, their rows are recorded),
   * closes the connections and removes the socket file. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The default of {@link LlmGatewayOptions.bodyLimitBytes}: 8 MiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** The gateway socket's file name in an agent's socket directory (`/run/warren/llm.sock` in the sandbox). */
export const LLM_SOCKET_NAME = 'llm.sock';

/** Paths (after the base URL) that are not model calls: no usage row. */
const NOT_CALLS = /(^|\/)count_tokens$/;

interface Socketed {
  readonly server: Server;
  readonly socketPath: string;
  readonly inflight: Set<AbortController>;
  readonly handlers: Set<Promise<void>>;
  closing: Promise<void> | undefined;
}

interface RequestContext {
  readonly access: AgentLlmAccess;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly signal: AbortSignal;
  readonly startedMs: number;
  readonly task: CurrentTask | null;
  readonly method: string;
  /** `POST /p/openai/chat/completions` (no query). */
  readonly route: string;
  readonly log: Logger;
}

/**
 * The host side of agents' LLM calls: an HTTP server on each agent's Unix socket
 * (`<socketDir>/llm.sock`, `/run/warren/llm.sock` in the sandbox) that is the agent's only egress.
 *
 * Routes:
 * - `/p/<provider>/<rest>` → `<provider.baseUrl>/<rest>`: the agent's credentials are stripped and
 *   the provider's key added; refused (403) unless the provider is in the agent's allow-list; refused
 *   (429 `budget_exceeded`) when a budget is used up; the request body's `model` mapped; retried on
 *   429/5xx, connection errors and missing headers with backoff until the task's deadline while
 *   nothing has reached the agent; the answer streamed to the agent as it arrives while its usage is
 *   read; one ledger row per call.
 * - `/mcp` (and below) → the supervisor's MCP endpoint with the agent's bearer token, streamed both
 *   ways.
 *
 * Errors reach the agent in the provider's wire format with `x-should-retry: false` (the OpenAI
 * and Anthropic SDKs honour it), so an SDK does not retry what the gateway already retried or refused.
 */
export class LlmGateway {
  private providers: Map<string, LlmProvider>;
  private readonly dispatcher: Agent;
  private readonly retry: RetryOptions;
  private readonly bodyLimitBytes: number;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly mcpUrl: URL | undefined;
  private readonly served = new Set<Socketed>();
  private closing: Promise<void> | undefined;

  private constructor(private readonly options: LlmGatewayOptions) {
    this.providers = indexProviders(options.providers);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.bodyLimitBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
    this.log = options.logger.child({ component: 'llm-gateway' });
    if (options.mcpUrl !== undefined) {
      try {
        this.mcpUrl = new URL(options.mcpUrl);
      } catch (error) {
        throw new LlmGatewayError('WARREN_LLM_CONFIG', `mcpUrl: not a URL: ${options.mcpUrl}`, { cause: error });
      }
    }
    this.dispatcher = new Agent({ headersTimeout: this.retry.headersTimeoutMs, bodyTimeout: this.retry.bodyTimeoutMs });
  }

  /**
   * Checks the providers and makes the gateway; nothing listens until {@link serve}.
   * @throws {LlmGatewayError} `WARREN_LLM_PROVIDER` for an invalid provider (see `indexProviders`),
   *   `WARREN_LLM_CONFIG` for an `mcpUrl` that is not a URL.
   */
  static create(options: LlmGatewayOptions): LlmGateway {
    return new LlmGateway(options);
  }

  /**
   * Replaces the providers (a reloaded configuration). Requests in flight finish with the provider
   * they started with.
   * @throws {LlmGatewayError} `WARREN_LLM_PROVIDER` for an invalid provider; the old set stays.
   */
  setProviders(providers: readonly LlmProvider[]): void {
    this.providers = indexProviders(providers);
  }

  /**
   * Serves `access`'s agent on the Unix socket `socketPath` (a stale socket file there is replaced),
   * made mode 0660 and given to `options.owner` when set.
   * @throws {LlmGatewayError} `WARREN_LLM_SOCKET` when the gateway is closed, when something that is
   *   not a socket is at `socketPath`, or when listening, chmod or chown fails (`cause`).
   */
  async serve(access: AgentLlmAccess, socketPath: string, options: ServeOptions = {}): Promise<ServedSocket> {
    if (this.closing) throw new LlmGatewayError('WARREN_LLM_SOCKET', `${socketPath}: the LLM gateway is closed`);
    const existing = await lstat(socketPath).catch(() => undefined);
    if (existing && !existing.isSocket()) {
      throw new LlmGatewayError('WARREN_LLM_SOCKET', `${socketPath}: exists and is not a socket; not replacing it`);
    }
    if (existing) await rm(socketPath, { force: true });
    const entry: Socketed = { server: createServer(), socketPath, inflight: new Set(), handlers: new Set(), closing: undefined };
    const log = this.log.child({ agent: access.agent });
    entry.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const handler = this.handle(access, entry, req, res, log).catch((error: unknown) => {
        log.error({ err: error }, 'llm gateway request failed');
        sendPlainError(res, 500, 'Internal Server Error', 'the gateway failed on this request', 'WARREN_LLM_INTERNAL');
      });
      entry.handlers.add(handler);
      handler.finally(() => entry.handlers.delete(handler)).catch(() => undefined);
    });
    entry.server.on('clientError', (_error, socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        entry.server.once('error', reject);
        entry.server.listen(socketPath, () => {
          entry.server.off('error', reject);
          resolve();
        });
      });
      await chmod(socketPath, 0o660);
      if (options.owner) await chown(socketPath, options.owner.uid, options.owner.gid);
      if (this.closing) throw new Error('the LLM gateway was closed meanwhile');
    } catch (error) {
      entry.server.close();
      await rm(socketPath, { force: true });
      throw new LlmGatewayError('WARREN_LLM_SOCKET', `${socketPath}: cannot serve the LLM gateway: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.served.add(entry);
    log.debug({ socketPath }, 'llm gateway serving');
    const close = (): Promise<void> => {
      entry.closing ??= this.closeSocket(entry);
      return entry.closing;
    };
    return { socketPath, close, [Symbol.asyncDispose]: close };
  }

  /** Closes every socket served (see {@link ServedSocket.close}) and the upstream connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.served].map((entry) => (entry.closing ??= this.closeSocket(entry))));
      await this.dispatcher.destroy().catch(() => undefined);
    })();
    return this.closing;
  }

  /** Stops one socket: no new connections, requests in flight aborted and finished, file removed. */
  private async closeSocket(entry: Socketed): Promise<void> {
    const closed = new Promise<void>((resolve) => entry.server.close(() => resolve()));
    for (const controller of entry.inflight) controller.abort();
    await Promise.allSettled([...entry.handlers]);
    entry.server.closeAllConnections();
    await closed;
    await rm(entry.socketPath, { force: true });
    this.served.delete(entry);
  }

  private async handle(access: AgentLlmAccess, entry: Socketed, req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    if (entry.closing) {
      res.setHeader('connection', 'close');
      sendPlainError(res, 503, 'Service Unavailable', 'the gateway is closing', 'WARREN_LLM_CLOSING');
      return;
    }
    const controller = new AbortController();
    entry.inflight.add(controller);
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort();
    };
    res.once('close', onClose);
    try {
      const raw = req.url ?? '/';
      const queryAt = raw.indexOf('?');
      const path = queryAt === -1 ? raw : raw.slice(0, queryAt);
      const search = queryAt === -1 ? '' : raw.slice(queryAt);
      const method = (req.method ?? 'GET').toUpperCase();
      const ctx: RequestContext = {
        access,
        req,
        res,
        signal: controller.signal,
        startedMs: this.clock(),
        task: access.currentTask(),
        method,
        route: `${method} ${path}`,
        log,
      };
      const provider = /^\/p\/([^/]*)(?:\/(.*))?$/.exec(path);
      if (provider) {
        let name: string;
        try {
          name = decodeURIComponent(provider[1] ?? '');
        } catch {
          name = provider[1] ?? '';
        }
        await this.forwardToProvider(ctx, name, provider[2] ?? '', search);
      } else if (path === '/mcp' || path.startsWith('/mcp/')) {
        await this.relayMcp(ctx, path.slice('/mcp'.length), search);
      } else {
        this.refuse(ctx, null, RefusalReason.unknownRoute, `no route ${ctx.route}: the gateway serves /p/<provider>/… and /mcp`);
        sendPlainError(res, 404, 'Not Found', `no route ${ctx.route}: the gateway serves /p/<provider>/… and /mcp`, 'WARREN_LLM_UNKNOWN_ROUTE');
      }
    } finally {
      res.off('close', onClose);
      entry.inflight.delete(controller);
    }
  }

  private refuse(ctx: RequestContext, provider: string | null, reason: RefusalReason, detail: string): void {
    const refusal: LlmRefusal = {
      agent: ctx.access.agent,
      template: ctx.access.template,
      taskId: ctx.task?.taskId ?? null,
      attempt: ctx.task?.attempt ?? null,
      provider,
      path: ctx.route,
      reason,
      detail,
    };
    ctx.log.warn({ provider, reason, detail, taskId: refusal.taskId }, 'llm gateway refused a request');
    try {
      this.options.reports.refused(refusal);
    } catch (error) {
      ctx.log.error({ err: error }, 'reporting a refusal failed');
    }
  }

  private async forwardToProvider(ctx: RequestContext, name: string, rest: string, search: string): Promise<void> {
    const { access, req, res } = ctx;
    const provider = this.providers.get(name);
    if (!provider || !access.providers.includes(name)) {
      const detail = provider
        ? `provider ${name} is not allowed for agent ${access.agent} (allowed: ${access.providers.join(', ') || 'none'})`
        : `provider ${name} is not configured`;
      this.refuse(ctx, name, RefusalReason.providerNotAllowed, detail);
      sendWireError(res, provider?.wireApi ?? 'openai-chat', 403, 'provider_not_allowed', detail);
      return;
    }
    const apiKey = access.apiKeys?.[name] ?? provider.apiKey;
    if (apiKey === undefined || apiKey === '') {
      const detail = `provider ${name} has no key for agent ${access.agent}: give it one (a gateway secret of the agent or its template)`;
      this.refuse(ctx, name, RefusalReason.keyMissing, detail);
      sendWireError(res, provider.wireApi, 403, 'provider_not_allowed', detail);
      return;
    }
    const url = upstreamUrl(provider, rest, search);
    if (!url) {
      const detail = `path ${ctx.route} would leave provider ${name}'s base URL`;
      this.refuse(ctx, name, RefusalReason.unknownRoute, detail);
      sendWireError(res, provider.wireApi, 400, 'invalid_request_error', detail);
      return;
    }
    const body = ctx.method === 'GET' || ctx.method === 'HEAD' ? null : await readBody(req, this.bodyLimitBytes);
    if (body === 'too_large') {
      res.setHeader('connection', 'close');
      sendWireError(res, provider.wireApi, 413, 'request_too_large', `request body over the gateway's limit of ${this.bodyLimitBytes} bytes`);
      return;
    }
    if (ctx.signal.aborted) return;
    const prepared = body ? prepareBody(provider, body, req.headers['content-type']) : { body: null, model: undefined };
    if (body) {
      const breach = checkBudgets(this.options.ledger, { agent: access.agent, template: access.template, task: ctx.task, budgets: access.budgets }, ctx.startedMs);
      if (breach) {
        this.refuse(ctx, name, RefusalReason.budgetExceeded, breach.message);
        sendWireError(res, provider.wireApi, 429, 'budget_exceeded', breach.message);
        return;
      }
    }
    const headers = providerRequestHeaders(req.headers, provider.wireApi, apiKey);
    const outcome = await this.callWithRetries(ctx, provider, url, headers, prepared.body);
    let status: number;
    let usage = { inputTokens: 0, outputTokens: 0, model: undefined as string | undefined };
    if (outcome.kind === 'response') {
      status = outcome.response.statusCode;
      usage = await this.streamAnswer(ctx, provider, outcome.response);
    } else if (outcome.kind === 'gave_up') {
      status = outcome.status;
      sendWireError(res, provider.wireApi, outcome.status, 'upstream_unavailable', outcome.message);
      try {
        this.options.reports.unavailable?.({
          agent: access.agent,
          template: access.template,
          taskId: ctx.task?.taskId ?? null,
          attempt: ctx.task?.attempt ?? null,
          provider: provider.name,
          status: outcome.status,
          attempts: outcome.attempts,
          detail: outcome.message,
        });
      } catch (error) {
        ctx.log.error({ err: error }, 'reporting an unavailable provider failed');
      }
    } else {
      // The agent went away, or its socket closed, before the provider answered: no call to record.
      if (!res.headersSent) res.destroy();
      return;
    }
    // GET /models, Anthropic's token counting and the like: not calls of a model.
    if (!body || NOT_CALLS.test(rest)) return;
    const model = prepared.model ?? usage.model ?? '';
    const cost = costUsd(provider, model, usage.inputTokens, usage.outputTokens) || (usage.model ? costUsd(provider, usage.model, usage.inputTokens, usage.outputTokens) : 0);
    const row: LlmUsageRow = {
      tsMs: this.clock(),
      agent: access.agent,
      template: access.template,
      taskId: ctx.task?.taskId ?? null,
      attempt: ctx.task?.attempt ?? null,
      provider: provider.name,
      model,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      costUsd: cost,
      status,
      durationMs: Math.max(0, this.clock() - ctx.startedMs),
    };
    ctx.log.info(
      {
        provider: row.provider,
        model: row.model,
        status,
        taskId: row.taskId,
        inputTokens: row.inputTokens,
        outputTokens: row.outputTokens,
        costUsd: row.costUsd,
        duration_ms: row.durationMs,
        attempts: outcome.attempts,
      },
      'llm call',
    );
    try {
      this.options.ledger.record(row);
    } catch (error) {
      ctx.log.error({ err: error }, 'cannot record an llm call in the usage ledger');
    }
    try {
      this.options.reports.call(row);
    } catch (error) {
      ctx.log.error({ err: error }, 'reporting an llm call failed');
    }
  }

  /**
   * Sends the request until the provider answers with a status that is not retryable, the deadline
   * leaves no room for another attempt, or the agent goes away.
   */
  private async callWithRetries(
    ctx: RequestContext,
    provider: LlmProvider,
    url: URL,
    headers: Record<string, string | string[]>,
    body: Buffer | null,
  ): Promise<
    | { kind: 'response'; response: Dispatcher.ResponseData; attempts: number }
    | { kind: 'gave_up'; status: number; message: string; attempts: number }
    | { kind: 'aborted'; attempts: number }
  > {
    const deadlineMs = ctx.task ? ctx.task.deadlineMs : ctx.startedMs + this.retry.withoutTaskMs;
    let attempts = 0;
    let last = '';
    let lastStatus = 502;
    for (;;) {
      attempts += 1;
      const remainingMs = deadlineMs - this.clock();
      const headersTimeout = Math.min(this.retry.headersTimeoutMs, Math.max(remainingMs, 1_000));
      let waitMs: number;
      try {
        const response = await request(url, {
          dispatcher: this.dispatcher,
          method: ctx.method,
          headers,
          body,
          headersTimeout,
          bodyTimeout: this.retry.bodyTimeoutMs,
          signal: ctx.signal,
        });
        if (!RETRYABLE_STATUSES.has(response.statusCode)) return { kind: 'response', response, attempts };
        lastStatus = response.statusCode;
        const text = await response.body.text().catch(() => '');
        last = `${response.statusCode}${providerMessage(text)}`;
        waitMs = retryAfterMs(response.headers, this.clock()) ?? backoffDelayMs(this.retry, attempts, this.random());
      } catch (error) {
        if (ctx.signal.aborted) return { kind: 'aborted', attempts };
        const code = (error as { code?: string }).code;
        if (code === 'UND_ERR_HEADERS_TIMEOUT') {
          lastStatus = 504;
          last = `no response headers within ${formatSeconds(headersTimeout)}`;
        } else {
          lastStatus = 502;
          last = describeConnectError(error);
        }
        waitMs = backoffDelayMs(this.retry, attempts, this.random());
      }
      ctx.log.debug({ provider: provider.name, attempt: attempts, failure: last, waitMs }, 'llm provider failed; retrying if time allows');
      if (this.clock() + waitMs >= deadlineMs) break;
      try {
        await sleep(waitMs, undefined, { signal: ctx.signal });
      } catch {
        return { kind: 'aborted', attempts };
      }
    }
    const elapsed = formatSeconds(this.clock() - ctx.startedMs);
    return {
      kind: 'gave_up',
      status: lastStatus,
      attempts,
      message: `provider ${provider.name}: ${last} after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${elapsed}`,
    };
  }

  /** Passes the provider's answer to the agent chunk by chunk, reading its usage on the way. */
  private async streamAnswer(
    ctx: RequestContext,
    provider: LlmProvider,
    response: Dispatcher.ResponseData,
  ): Promise<{ inputTokens: number; outputTokens: number; model: string | undefined }> {
    const { res } = ctx;
    const contentType = headerValue(response.headers['content-type']);
    const meter = new UsageMeter(provider.wireApi, contentType);
    res.writeHead(response.statusCode, agentResponseHeaders(response.headers));
    res.flushHeaders();
    const cut = await pipeToAgent(response.body, res, ctx.signal, (chunk) => meter.push(chunk));
    if (cut && ctx.signal.aborted) {
      ctx.log.debug({ provider: provider.name }, 'the agent went away (or its socket closed) before the answer ended');
    } else if (cut) {
      ctx.log.warn({ provider: provider.name, err: cut }, 'llm provider answer ended early; the agent saw it end there');
    }
    return meter.result();
  }

  private async relayMcp(ctx: RequestContext, rest: string, search: string): Promise<void> {
    const { access, req, res } = ctx;
    if (!this.mcpUrl || access.mcpToken === undefined) {
      const detail = !this.mcpUrl ? 'no MCP endpoint is served by this supervisor' : `agent ${access.agent} has no MCP token`;
      this.refuse(ctx, null, RefusalReason.mcpNotAllowed, detail);
      sendPlainError(res, 403, 'Forbidden', detail, 'WARREN_LLM_MCP_NOT_ALLOWED');
      return;
    }
    const url = new URL(this.mcpUrl);
    url.pathname = url.pathname.replace(/\/+$/, '') + rest;
    url.search = search;
    const headers = mcpRequestHeaders(req.headers, access.mcpToken);
    const hasBody = ctx.method !== 'GET' && ctx.method !== 'HEAD';
    if (hasBody && req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length'];
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher: this.dispatcher,
        method: ctx.method,
        headers,
        body: hasBody ? req : null,
        bodyTimeout: 0,
        signal: ctx.signal,
      });
    } catch (error) {
      if (ctx.signal.aborted) {
        if (!res.headersSent) res.destroy();
        return;
      }
      ctx.log.warn({ err: error }, 'mcp endpoint unreachable');
      sendPlainError(res, 502, 'Bad Gateway', `the MCP endpoint did not answer: ${describeConnectError(error)}`, 'WARREN_LLM_MCP_UNREACHABLE');
      return;
    }
    res.writeHead(response.statusCode, agentResponseHeaders(response.headers));
    res.flushHeaders();
    await pipeToAgent(response.body, res, ctx.signal, () => undefined);
  }
}
