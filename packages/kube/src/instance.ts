/**
 * One agent pod as an `AgentInstance` (`KubernetesInstance`): followed through a label watch, its
 * end read from the pod's status, stopped by deleting the pod, usage read from the metrics API.
 * The runtime that made it is its `PodHost`.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { RemoteChannel } from '@warren/node';
import type { AgentExit, AgentInstance, AgentStopReason, AgentUsage } from '@warren/runtime';
import { AGENT_LABELS } from './manifests.js';
import { podOutcome } from './pod-exit.js';
import type { PodWatch, PodWatchHandlers } from './pod-watch.js';

/** What an instance uses of the runtime that made it (`KubernetesRuntime`). */
export interface PodHost {
  /** Watches the pods matching `labelSelector`; its first list has come when `ready` resolves. */
  watchPods(labelSelector: string, handlers: PodWatchHandlers): PodWatch;
  /** Deletes the pod and waits until it is gone; false when it was already gone. */
  deletePodAndWait(agent: string, pod: string, graceSeconds: number): Promise<boolean>;
  /** The pod's usage from the metrics API, or null when the cluster does not serve it. */
  podUsage(pod: string): Promise<AgentUsage | null>;
  /** How often `usage()` reads the metrics API at most, in ms. */
  readonly metricsIntervalMs: number;
  /** Logs a failure of background work (a watch, a delete, a metrics read). */
  reportError(error: unknown, context: string): void;
}


/** An instance from {@link KubernetesRuntime.start}: an `AgentInstance` with what the pod's status says. */
export interface KubernetesAgentInstance extends AgentInstance {
  /** The pod's name in the runtime's namespace (`warren-<agent>`). */
  readonly podName: string;
  /** The pod's last phase seen: `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`, or `Deleted` once it is gone. */
  readonly phase: string;
  /**
   * Kubernetes' reason for the end, set when `exited` settles: `OOMKilled`, `Completed`, `Error`,
   * `Evicted: <message>`, `Deleted` (removed before it finished), or null.
   */
  readonly terminationReason: string | null;
}

const ZERO_USAGE: AgentUsage = { memoryBytes: 0, pids: 0, cpuMs: 0, pidsRefused: 0, oomKills: 0 };
/** One agent pod followed through a label watch. */
export class KubernetesInstance implements KubernetesAgentInstance {
  readonly pid = 0;
  readonly unsafe = false;
  readonly exited: Promise<AgentExit>;
  terminationReason: string | null = null;
  phase = 'Pending';
  private settle!: (exit: AgentExit) => void;
  private ended = false;
  private watch: PodWatch | undefined;
  private stopping: Promise<AgentExit> | undefined;
  private stopReason: AgentStopReason | undefined;
  private stopGraceSeconds: number | undefined;
  private lastUsage: AgentUsage = ZERO_USAGE;
  private usageReadAt = 0;
  private usageReading = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly pod: string,
    private readonly runtime: PodHost,
    private readonly forget: () => void,
    private readonly channel: RemoteChannel | undefined,
  ) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
  }

  /** Whether the runner in the pod is connected to its gateway there (through the channel hub); always false without one. */
  get connected(): boolean {
    return this.channel?.connected ?? false;
  }

  get podName(): string {
    return this.pod;
  }

  /** @internal Starts the watch; resolves after the first list. */
  async follow(): Promise<void> {
    const watch = this.runtime.watchPods(
      `${AGENT_LABELS.managedBy}=warren,${AGENT_LABELS.agent}=${this.name}`,
      {
        onList: (pods) => {
          const pod = pods.find((p) => p.metadata?.name === this.pod);
          if (pod === undefined) this.observe('DELETED', undefined);
          else this.observe('MODIFIED', pod);
        },
        onEvent: (type, pod) => {
          if (pod.metadata?.name === this.pod) this.observe(type, pod);
        },
        onError: (error) => this.runtime.reportError(error, `watch of pod ${this.pod}`),
      },
    );
    this.watch = watch;
    await watch.start();
  }

  /** @internal Ends the watch without settling `exited` (the runtime closed). */
  endWatch(): void {
    this.watch?.close();
  }

  private last: V1Pod | undefined;

  private observe(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: V1Pod | undefined): void {
    if (this.ended) return;
    if (pod !== undefined) {
      this.last = pod;
      this.phase = pod.status?.phase ?? this.phase;
    }
    if (type === 'DELETED') {
      this.phase = 'Deleted';
      const outcome = this.last === undefined ? null : podOutcome(this.last);
      if (this.stopReason !== undefined && outcome === null) return this.finish({ kind: this.stopReason.reason, detail: this.stopReason.detail }, null);
      if (outcome !== null) return this.finish(outcome.exit, outcome.reason);
      // Deleted before it ended (by stop() or by someone else): the kubelet sent SIGTERM, then SIGKILL after the grace period.
      return this.finish({ kind: 'signaled', signal: this.stopGraceSeconds === 0 ? 'SIGKILL' : 'SIGTERM' }, 'Deleted');
    }
    if (pod === undefined) return;
    const outcome = podOutcome(pod);
    if (outcome === null) return;
    // Ended by itself: what it held on the node goes with the pod, then the exit is reported.
    this.ended = true;
    this.terminationReason = outcome.reason;
    void this.runtime
      .deletePodAndWait(this.name, this.pod, 0)
      .catch((error: unknown) => this.runtime.reportError(error, `deleting the finished pod ${this.pod}`))
      .finally(() => this.finish(outcome.exit, outcome.reason, true));
  }

  private finish(exit: AgentExit, reason: string | null, already = false): void {
    if (this.ended && !already) return;
    this.ended = true;
    this.terminationReason = reason;
    this.watch?.close();
    this.forget();
    this.channel?.markExited(exit);
    this.channel?.close();
    this.settle(exit);
  }

  /**
   * Deletes the pod with `gracePeriodSeconds` = ceil(`graceMs` / 1000) (default 5000 ms) and
   * resolves with the exit once the watch sees it gone. Idempotent.
   */
  stop(graceMs = 5000, reason?: AgentStopReason): Promise<AgentExit> {
    this.stopping ??= (async () => {
      if (this.ended) return this.exited;
      this.stopReason = reason;
      this.stopGraceSeconds = Math.max(0, Math.ceil(graceMs / 1000));
      try {
        // Waits for the pod to be gone by reading it too, so a broken watch cannot hold the stop.
        await this.runtime.deletePodAndWait(this.name, this.pod, this.stopGraceSeconds);
        this.observe('DELETED', undefined);
      } catch (error) {
        this.runtime.reportError(error, `deleting pod ${this.pod}`);
      }
      return this.exited;
    })();
    return this.stopping;
  }

  freeze(): boolean {
    return false;
  }

  thaw(): void {}

  /** The last sample of the metrics API (memory and CPU; pids and the counters read 0), refreshed in the background at most every `metricsIntervalMs`; zeros without metrics-server and after the end. */
  usage(): AgentUsage {
    if (this.ended) return { ...this.lastUsage, memoryBytes: 0, pids: 0 };
    const now = Date.now();
    if (!this.usageReading && now - this.usageReadAt >= this.runtime.metricsIntervalMs) {
      this.usageReading = true;
      this.usageReadAt = now;
      this.runtime
        .podUsage(this.pod)
        .then((usage) => {
          if (usage !== null) this.lastUsage = usage;
        })
        .catch((error: unknown) => this.runtime.reportError(error, `reading the metrics of pod ${this.pod}`))
        .finally(() => {
          this.usageReading = false;
        });
    }
    return this.lastUsage;
  }

  /** Tells the pod's gateway to cancel the execution (through the channel hub); nothing without one. */
  cancel(taskId: string, attempt: number, reason: string): void {
    this.channel?.cancel(taskId, attempt, reason);
  }

  /** Asks the pod's gateway to publish a kept result again. @returns whether the runner is connected (false without a channel). */
  resendResult(taskId: string, attempt: number): boolean {
    return this.channel?.resendResult(taskId, attempt) ?? false;
  }

  /** Asks the pod's runner to finish and exit (through the channel hub); nothing without one. */
  requestShutdown(why: string): void {
    this.channel?.requestShutdown(why);
  }

  /** Stops the pod if it still runs (default grace) and ends the watch. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.ended) await this.stop();
      this.watch?.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
