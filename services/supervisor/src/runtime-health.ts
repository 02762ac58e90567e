import { relative } from 'node:path';
import { probeAgentCli, type ProbeResult } from '@warren/agent-runner';
import { agentCliHostBinary } from './agent-runtime.js';
import type { SupervisorContext } from './context.js';
import type { Repositories } from './repositories.js';
import type { ProviderDef } from './providers.js';
import { AGENT_CLI_KINDS, type AgentCliKind, type AgentTemplate } from './templates.js';

/** How often the runtimes are checked again while the supervisor runs, in ms. */
export const RUNTIME_CHECK_INTERVAL_MS = 60_000;

/**
 * Whether each template's runtime can run: a coding-agent CLI must be installed and answer
 * `--version`, every provider the template names must have a file in `providers/`, and its
 * repository (if it names one) must be fetched into its mirror. A template
 * found unhealthy starts no agents and its tasks wait with the reason (`runtime.unhealthy`), instead
 * of failing one by one; it is checked again every {@link RUNTIME_CHECK_INTERVAL_MS} and when it
 * answers, `runtime.healthy` is recorded and its tasks run.
 */
export class RuntimeHealth {
  private readonly reasons = new Map<string, string>();
  private readonly versions = new Map<string, string | null>();
  private checking: Promise<void> | undefined;
  private checkedMs = -Infinity;
  private checkedOnce = false;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly providers: ReadonlyMap<string, ProviderDef>,
    private readonly repositories: Repositories,
    private readonly probe: (kind: AgentCliKind, binary: string) => Promise<ProbeResult> = (kind, binary) => probeAgentCli(kind, binary),
  ) {}

  /** Why template `name` cannot run now, or undefined when it can (or has not been found wanting). */
  unhealthy(name: string): string | undefined {
    return this.reasons.get(name);
  }

  /** Whether a check has completed since the start. */
  get checked(): boolean {
    return this.checkedOnce;
  }

  /** Checks every template now, and waits for it (the supervisor's start). */
  async checkNow(): Promise<void> {
    this.checkedMs = Date.now();
    this.checking ??= this.checkAll().finally(() => (this.checking = undefined));
    await this.checking;
  }

  /** A tick stage: starts a check in the background when the last one is older than the interval. */
  maybeCheck(nowMs: number): void {
    if (this.checking || nowMs - this.checkedMs < RUNTIME_CHECK_INTERVAL_MS) return;
    this.checkNow().catch((error: unknown) => this.ctx.log.error({ err: error }, 'cannot check the runtimes'));
  }

  /** Settles the check in progress (at shutdown). */
  async close(): Promise<void> {
    await this.checking;
  }

  private async checkAll(): Promise<void> {
    const results = await Promise.all([...this.ctx.templates.values()].map(async (t) => [t, await this.checkTemplate(t)] as const));
    let recovered = false;
    for (const [template, result] of results) {
      const before = this.reasons.get(template.name);
      const kind = template.runtime.kind;
      if (!result.ok) {
        this.reasons.set(template.name, result.reason);
        if (before !== result.reason) this.ctx.emit({ actor: 'supervisor', action: 'runtime.unhealthy', object: `template:${template.name}`, details: { kind, reason: result.reason } });
      } else {
        this.reasons.delete(template.name);
        if (before !== undefined) recovered = true;
        const version = result.version;
        if (before !== undefined || (isAgentCli(kind) && !this.versions.has(template.name))) {
          this.ctx.emit({ actor: 'supervisor', action: 'runtime.healthy', object: `template:${template.name}`, details: { kind, version } });
        }
        this.versions.set(template.name, version);
      }
    }
    this.checkedOnce = true;
    if (recovered) this.ctx.requestTick();
  }

  private async checkTemplate(template: AgentTemplate): Promise<{ ok: true; version: string | null } | { ok: false; reason: string }> {
    for (const provider of template.llm?.providers ?? []) {
      if (!this.providers.has(provider)) return { ok: false, reason: `provider '${provider}' has no file in ${relative(this.ctx.config.root, this.ctx.config.providersDir) || 'providers'}/` };
    }
    if (template.repository) {
      const held = await this.repositories.ensure(template.repository.source);
      if (held !== undefined) return { ok: false, reason: held };
    }
    const kind = template.runtime.kind;
    if (!isAgentCli(kind)) return { ok: true, version: null };
    const binary = agentCliHostBinary(kind, this.ctx.config.agentClisDir);
    if (!binary) return { ok: false, reason: `${kind} is not installed in ${this.ctx.config.agentClisDir} (run: bash scripts/agent-clis.sh install)` };
    const probed = await this.probe(kind, binary.host);
    return probed.ok ? { ok: true, version: probed.version } : { ok: false, reason: probed.reason };
  }
}

function isAgentCli(kind: string): kind is AgentCliKind {
  return (AGENT_CLI_KINDS as readonly string[]).includes(kind);
}
