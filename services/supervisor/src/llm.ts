import type { Logger } from '@warren/core';
import type { AgentLlmAccess, CurrentTask, LlmBudget, LlmGateway, LlmProvider, LlmRefusal, LlmUnavailable, ServedSocket } from '@warren/llm-gateway';
import type { LlmUsageRow, StateStore, UsageLedger } from '@warren/registry';
import type { AgentStartSpec, ChannelService } from '@warren/runtime';
import type { SecretStore } from '@warren/secrets';
import type { WarrenEvent } from './events.js';
import type { ProviderDef } from './providers.js';
import type { AgentTemplate, BudgetLimits } from './templates.js';

/**
 * The socket's name in the agent's `/run/warren`: `LLM_SOCKET_NAME` of `@warren/llm-gateway`
 * (a test holds them equal), written here so that a supervisor none of whose agents use a model
 * never loads the gateway and its HTTP client.
 */
export const LLM_SOCKET = 'llm.sock';

/** What the LLM channel needs of the supervisor. */
export interface LlmChannelOptions {
  readonly providers: ReadonlyMap<string, ProviderDef>;
  readonly templates: ReadonlyMap<string, AgentTemplate>;
  readonly state: StateStore;
  readonly ledger: UsageLedger;
  readonly secrets: SecretStore;
  /** The supervisor's environment, for providers whose key is `{ env: NAME }`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  emit(event: WarrenEvent): void;
  /** Counts a call and a refusal in the metrics. */
  recordCall(row: LlmUsageRow): void;
  recordRefusal(reason: string): void;
}

/** What is bound once the supervisor's stages and HTTP server exist (before any agent starts). */
export interface LlmChannelLate {
  /** Stops an execution whose budget ran out, with `detail` as its reason. */
  stopForBudget?(taskId: string, attempt: number, agent: string, detail: string): void;
  /** Keeps why a provider failed every attempt, as the reason of the execution if it then fails. */
  providerFailed?(taskId: string, attempt: number, detail: string): void;
  /** `http://127.0.0.1:7070/mcp`, when the API is served: agents reach Warren's MCP tools through `/mcp` of their gateway. */
  mcpUrl?: string;
  /** Makes the agent's own token for `/mcp` (principal: the agent), and revokes it when the agent stops. */
  agentTokens?: { create(agent: string): string; revoke(agent: string): void };
}

/**
 * The LLM gateway as the runtime's channel service: each agent of a template with LLM rules gets
 * `/run/warren/llm.sock` in its sandbox, through which it reaches only the providers of its
 * template's allow-list, with keys it never sees: its gateway secrets (its own over its
 * template's) or the supervisor's environment. Every call is a ledger row and an `llm.call`
 * event; every refusal an `llm.refused` event; a budget used up stops the task. With the API
 * served, `/mcp` reaches Warren's MCP tools as the agent, with a token made for it at its start
 * and revoked at its stop.
 */
export class LlmChannel implements ChannelService {
  readonly socketName = LLM_SOCKET;
  readonly late: LlmChannelLate = {};
  private gateway: Promise<LlmGateway> | undefined;
  private closed = false;

  constructor(private readonly options: LlmChannelOptions) {}

  async serve(spec: AgentStartSpec, socketPath: string): Promise<{ close(): Promise<void> } | null> {
    const template = this.options.templates.get(spec.template);
    if (!template?.llm || this.closed) return null;
    const agent = spec.name;
    const token = this.late.mcpUrl !== undefined ? this.late.agentTokens?.create(agent) : undefined;
    const revoke = (): void => {
      if (token !== undefined) this.late.agentTokens?.revoke(agent);
    };
    const access: AgentLlmAccess = {
      agent,
      template: template.name,
      providers: template.llm.providers,
      budgets: budgetsOf(template),
      currentTask: () => this.currentTask(agent, template),
      apiKeys: this.keysOf(agent, template),
      ...(token !== undefined ? { mcpToken: token } : {}),
    };
    let served: ServedSocket;
    try {
      served = await (await this.gatewayNow()).serve(access, socketPath, { owner: { uid: spec.uid, gid: spec.gid } });
    } catch (error) {
      revoke();
      throw error;
    }
    let closing: Promise<void> | undefined;
    return {
      close: () =>
        (closing ??= served.close().finally(revoke)),
    };
  }

  /** Closes the gateway (its sockets with it). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    // A gateway that could not be made has nothing to close.
    await this.gateway?.then((gateway) => gateway.close()).catch(() => undefined);
  }

  /**
   * The one gateway of this supervisor, made at the first agent's start (the MCP endpoint is
   * known by then), its module loaded then.
   */
  private gatewayNow(): Promise<LlmGateway> {
    this.gateway ??= import('@warren/llm-gateway').then(({ LlmGateway }) => LlmGateway.create({
      providers: this.hostProviders(),
      ledger: this.options.ledger,
      reports: {
        call: (row) => this.reportCall(row),
        refused: (refusal) => this.reportRefusal(refusal),
        unavailable: (failure) => this.reportUnavailable(failure),
      },
      ...(this.late.mcpUrl !== undefined ? { mcpUrl: this.late.mcpUrl } : {}),
      logger: this.options.logger,
    }));
    // A failure is not kept: the next agent's start tries again.
    this.gateway.catch(() => {
      this.gateway = undefined;
    });
    return this.gateway;
  }

  /** Every provider file, with its key when the key comes from the supervisor's environment. */
  private hostProviders(): LlmProvider[] {
    return [...this.options.providers.values()].map((def) => {
      const key = 'env' in def.key ? this.options.env[def.key.env] : undefined;
      return { name: def.name, baseUrl: def.baseUrl, wireApi: def.wireApi, models: def.models, prices: def.prices, ...(key ? { apiKey: key } : {}) };
    });
  }

  /** The agent's keys by provider: the gateway secret each provider file names, as resolved for this agent. */
  private keysOf(agent: string, template: AgentTemplate): Record<string, string> {
    const wanted = (template.llm?.providers ?? []).map((name) => this.options.providers.get(name)).filter((def) => def !== undefined && 'secret' in def.key);
    if (wanted.length === 0) return {};
    const secrets = new Map(this.options.secrets.secretsFor(agent, template.name).gateway.map((s) => [s.name, s.value]));
    const keys: Record<string, string> = {};
    for (const def of wanted) {
      const value = secrets.get((def!.key as { secret: string }).secret);
      if (value !== undefined) keys[def!.name] = value;
    }
    return keys;
  }

  /**
   * The agent's most recently assigned open execution, and until when the gateway may retry its
   * provider: {@link retryMarginMs} before its timeout, so that the gateway's reason reaches the
   * agent (and the card) before the agent's own deadline or the runner's limit.
   */
  private currentTask(agent: string, template: AgentTemplate): CurrentTask | null {
    let newest: { taskId: string; attempt: number; assignedMs: number } | undefined;
    for (const a of this.options.state.openAssignments()) {
      if (a.agent === agent && (newest === undefined || a.assignedMs > newest.assignedMs)) newest = a;
    }
    return newest ? { taskId: newest.taskId, attempt: newest.attempt, deadlineMs: newest.assignedMs + template.taskTimeoutMs - retryMarginMs(template.taskTimeoutMs) } : null;
  }

  private reportCall(row: LlmUsageRow): void {
    this.options.recordCall(row);
    this.options.emit({
      actor: `agent:${row.agent}`,
      action: 'llm.call',
      object: row.taskId !== null ? `task:${row.taskId}` : `agent:${row.agent}`,
      details: {
        provider: row.provider,
        model: row.model,
        taskId: row.taskId,
        attempt: row.attempt,
        inputTokens: row.inputTokens,
        outputTokens: row.outputTokens,
        costUsd: row.costUsd,
        status: row.status,
        durationMs: row.durationMs,
      },
    });
  }

  private reportRefusal(r: LlmRefusal): void {
    this.options.recordRefusal(r.reason);
    this.options.emit({
      actor: `agent:${r.agent}`,
      action: 'llm.refused',
      object: r.taskId !== null ? `task:${r.taskId}` : `agent:${r.agent}`,
      details: { provider: r.provider, path: r.path, reason: r.reason, detail: r.detail },
    });
    if (r.reason === 'budget_exceeded' && r.taskId !== null && r.attempt !== null) this.late.stopForBudget?.(r.taskId, r.attempt, r.agent, r.detail);
  }

  private reportUnavailable(u: LlmUnavailable): void {
    this.options.logger.warn({ agent: u.agent, provider: u.provider, status: u.status, attempts: u.attempts, taskId: u.taskId }, u.detail);
    if (u.taskId !== null && u.attempt !== null) this.late.providerFailed?.(u.taskId, u.attempt, u.detail);
  }
}

/**
 * How long before a task's timeout the gateway stops retrying a failing provider, in ms: a fifth
 * of the timeout, at most 10 s. Warren's own loop stops a tenth (at most 5 s) before it, so the
 * gateway gives up first and its sentence is what the task reports.
 */
export function retryMarginMs(taskTimeoutMs: number): number {
  return Math.min(10_000, Math.floor(taskTimeoutMs / 5));
}

/**
 * The gateway's budgets of `template`: per execution and per UTC day for the template (all its
 * agents together), per UTC day for each agent.
 */
export function budgetsOf(template: AgentTemplate): { readonly template: LlmBudget; readonly agent: LlmBudget } {
  const b = template.llm?.budget;
  const pick = (limits: BudgetLimits | undefined, tokens: 'taskTokens' | 'dayTokens', cost: 'taskCostUsd' | 'dayCostUsd'): LlmBudget => ({
    ...(limits?.tokens != null ? { [tokens]: limits.tokens } : {}),
    ...(limits?.costUsd != null ? { [cost]: limits.costUsd } : {}),
  });
  return {
    template: { ...pick(b?.task, 'taskTokens', 'taskCostUsd'), ...pick(b?.templateDay, 'dayTokens', 'dayCostUsd') },
    agent: pick(b?.agentDay, 'dayTokens', 'dayCostUsd'),
  };
}
