/**
 * `KubernetesRuntime`: agents as Kubernetes pods, one namespace (an `AgentRuntime`). Each started
 * agent is a `KubernetesInstance` (`instance.ts`); the API's answers are read in `api-status.ts`.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, Exec, KubeConfig, Metrics, NetworkingV1Api } from '@kubernetes/client-node';
import type { V1Pod, V1Status } from '@kubernetes/client-node';
import type { IPod } from 'kubernetes-models/v1/Pod';
import { agentSigningKey, type Broker } from '@warren/broker';
import { MissingCapabilityError, WarrenError } from '@warren/core';
import type { ChannelHub, HomeFile, RemoteChannel } from '@warren/node';
import { RuntimeError } from '@warren/runtime';
import type {
  AgentEvents,
  AgentExecOptions,
  AgentExit,
  AgentIsolation,
  AgentProcess,
  AgentRuntime,
  AgentSpec,
  AgentStartSpec,
  AgentStorageRef,
  AgentUsage,
  ReclaimReport,
  RuntimeHost,
} from '@warren/runtime';
import { agentManifests, AGENT_APP_NAME, AGENT_CONTAINER_NAME, AGENT_LABELS } from './manifests.js';
import type { AgentManifests } from './manifests.js';
import { agentResourceNames } from './names.js';
import { PodWatch } from './pod-watch.js';
import type { PodWatchHandlers } from './pod-watch.js';
import { checkRestricted } from './restricted.js';
import type { AgentNatsCredentials, AgentPodSpec, NetworkEndpoint } from './spec.js';
import { validateManifest } from './validate.js';
import { apiError, execExit, isStatus, parseDurationSeconds, parseQuantity } from './api-status.js';
import { KubernetesInstance, type KubernetesAgentInstance } from './instance.js';

/** Options of {@link KubernetesRuntime}. Times in ms unless the name says otherwise. */
export interface KubernetesRuntimeOptions {
  /** The cluster to use; default `KubeConfig.loadFromDefault()` (KUBECONFIG, ~/.kube/config, or in-cluster config). */
  readonly kubeConfig?: KubeConfig;
  /** The namespace holding every agent object. Default `warren`. */
  readonly namespace?: string;
  /** The container image holding the agent runner. */
  readonly image: string;
  /** The runner's argv in the image. Default `['warren-agent-runner']`. */
  readonly command?: readonly string[];
  /** The agent's broker credentials, written to its Secret as `nats.json`. */
  readonly credentials: (agent: AgentStartSpec) => AgentNatsCredentials | Promise<AgentNatsCredentials>;
  /** The broker's addresses or pods: the only egress besides `gatewayEndpoints` (NetworkPolicy). */
  readonly brokerEndpoints: readonly NetworkEndpoint[];
  /** The LLM gateway's addresses or pods. Default none. */
  readonly gatewayEndpoints?: readonly NetworkEndpoint[];
  /** A RuntimeClass such as `gvisor` or `kata`. */
  readonly runtimeClassName?: string;
  /** The home PVC's StorageClass; default the cluster's default class. */
  readonly storageClassName?: string;
  /** CPU request and limit of each pod, in millicores. Default 1000. */
  readonly cpuMillis?: number;
  /** Extra labels on every object. */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Site additions to each pod before it is checked and sent (tolerations, a nodeSelector,
   * annotations). The result still passes `validateManifest` and, unless `checkRestricted` is
   * false, `checkRestricted`.
   */
  readonly podOverrides?: (pod: IPod) => IPod;
  /**
   * Whether to refuse a pod that breaks the Pod Security Standards "restricted" profile before
   * sending it. Default true; false leaves the decision to the namespace's Pod Security admission
   * (for a namespace labelled with a lower level), whose 403 is then reported.
   */
  readonly checkRestricted?: boolean;
  /** `timeoutSeconds` of each pod watch request; the watch is resumed after it. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Wait before retrying a failed list or watch, in ms. Default 1000. */
  readonly retryMs?: number;
  /** Longest wait for a deleted pod to disappear (stop, sleep, reclaim), in ms. Default 120000. */
  readonly deleteTimeoutMs?: number;
  /** Least time between two reads of the metrics API for one instance's `usage()`, in ms. Default 15000 (metrics-server's resolution). */
  readonly metricsIntervalMs?: number;
  /** Where watch and metrics failures are reported. Default nowhere. */
  readonly onError?: (error: unknown, context: string) => void;
  /**
   * The supervisor's end of remote agent channels. With it, each start gets an instance id, is
   * attached to the hub before its pod is created, and its pod runs `warren-pod-agent` (see
   * {@link KubernetesRuntimeOptions.command}) with `~/.warren/agent.json` from the Secret: the
   * instance's `connected`, `cancel`, `resendResult` and `requestShutdown` go through the hub.
   * Needs {@link broker}. Without it instances are never connected.
   */
  readonly channels?: ChannelHub;
  /** The supervisor's broker: its namespace names the pod's, and it creates each agent's assign consumer before the pod starts (the pod may not). Needed with {@link channels}. */
  readonly broker?: Broker;
  /** The instance's master signing key: the pod gets only its agent's key (`agentSigningKey`). Default none (unsigned broker). */
  readonly signingKey?: Uint8Array;
}

/**
 * A start spec as a placement router ships it to a runtime elsewhere: with the files to write into
 * the home (`@warren/node` `HomeFile`s) instead of a `prepareHome` function. The pod's program
 * writes them (a `.warren/nats.json` among them is left to the Secret).
 */
export type PodStartSpec = AgentStartSpec & { readonly homeFiles?: readonly HomeFile[] };

/**
 * Runs agents as Kubernetes pods (`AgentRuntime` over `@kubernetes/client-node` 1.4), one namespace.
 * An agent is five objects from `agentManifests`: ServiceAccount, Secret (`nats.json`), PVC (its
 * home, kept across sleeps), NetworkPolicy and Pod. What each method does is in its docstring; the
 * differences from the bubblewrap driver:
 * - `pid` is 0 (the process runs on a node). With option `channels` the pod runs
 *   `warren-pod-agent`: the gateway runs in the pod, reaches the broker with the agent's own NATS
 *   credentials and signing key, and its events come through the channel hub (`connected`,
 *   `cancel`, `resendResult`, `requestShutdown`); without it `connected` stays false.
 * - `freeze()` returns false (pods cannot be frozen); `usage()` reads the metrics API
 *   (metrics-server) when the cluster serves it, zeros otherwise.
 * - A finished pod is deleted before `exited` settles, so a later `start` can create it again.
 */
export class KubernetesRuntime implements AgentRuntime {
  readonly namespace: string;
  private readonly kubeConfig: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly instances = new Set<KubernetesInstance>();
  private closed = false;

  /** Reads the kubeconfig (no I/O against the cluster: call `probe()` and `reclaim()` first). */
  constructor(private readonly options: KubernetesRuntimeOptions) {
    this.namespace = options.namespace ?? 'warren';
    if (options.kubeConfig === undefined) {
      this.kubeConfig = new KubeConfig();
      this.kubeConfig.loadFromDefault();
    } else {
      this.kubeConfig = options.kubeConfig;
    }
    this.core = this.kubeConfig.makeApiClient(CoreV1Api);
    this.networking = this.kubeConfig.makeApiClient(NetworkingV1Api);
  }

  /**
   * Checks that the API server answers, the namespace exists, and reports its Pod Security labels
   * (`details.podSecurity.enforce`: `restricted`, `baseline`, `privileged` or null when unlabelled,
   * then the cluster's default applies) and whether the metrics API is served. Pods are always
   * confined, so `isolation` (`full` or `unsafe`) is only reported back.
   * @throws {MissingCapabilityError} when the API server or the namespace is missing.
   */
  async probe(isolation: AgentIsolation = 'full'): Promise<RuntimeHost> {
    const server = this.kubeConfig.getCurrentCluster()?.server ?? '(no cluster in the kubeconfig)';
    let labels: Record<string, string> = {};
    try {
      const namespace = await this.core.readNamespace({ name: this.namespace });
      labels = namespace.metadata?.labels ?? {};
    } catch (error) {
      if (isStatus(error, 404)) {
        throw new MissingCapabilityError(
          `Kubernetes namespace ${this.namespace}`,
          `create it: kubectl create namespace ${this.namespace} && kubectl label namespace ${this.namespace} pod-security.kubernetes.io/enforce=restricted`,
          { cause: error },
        );
      }
      throw new MissingCapabilityError(`the Kubernetes API server at ${server}`, `check the kubeconfig and that the server is reachable (${apiError('-', 'read namespace', error).message})`, { cause: error });
    }
    const enforce = labels['pod-security.kubernetes.io/enforce'] ?? null;
    const metrics = await new Metrics(this.kubeConfig).getPodMetrics(this.namespace).then(() => true, () => false);
    return {
      driver: 'kubernetes',
      isolation,
      details: {
        server,
        namespace: this.namespace,
        podSecurity: {
          enforce,
          version: labels['pod-security.kubernetes.io/enforce-version'] ?? null,
          summary: enforce === null
            ? 'no pod-security.kubernetes.io/enforce label: the cluster default applies (pods are still checked against restricted before they are sent)'
            : `admission enforces the Pod Security Standards "${enforce}" profile`,
        },
        metricsApi: metrics,
      },
    };
  }

  /** Deletes the pods an earlier run left (Warren's labels in the namespace) and waits until they are gone; reports their names. */
  async reclaim(): Promise<ReclaimReport> {
    this.requireOpen('reclaim', '-');
    let pods: V1Pod[];
    try {
      pods = (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.selector() })).items;
    } catch (error) {
      throw apiError('-', `list the pods left in namespace ${this.namespace}`, error);
    }
    const names = pods.map((p) => p.metadata?.name ?? '').filter((n) => n !== '');
    for (const name of names) await this.deletePodAndWait('-', name, 0);
    return { instances: names, storage: [] };
  }

  /**
   * Creates the agent's objects (ServiceAccount, Secret, PVC, NetworkPolicy, then Pod) and follows
   * its pod. Each manifest is checked with `validateManifest` and the pod with `checkRestricted`
   * before anything is sent. An existing ServiceAccount and PVC are reused, an existing Secret and
   * NetworkPolicy replaced; an existing pod is an error (an instance runs, or `reclaim` was not
   * called). Resolves once the pod exists (it may still be `Pending`).
   * Objects created before a refusal stay (ServiceAccount, Secret, PVC, NetworkPolicy: the agent's
   * storage and identity); `releaseStorage` removes them.
   * @throws {AgentPodSpecError} when the start spec makes an invalid `AgentPodSpec` (naming the field).
   * @throws {RuntimeError} naming the check rule or the API's refusal (a 403 from Pod Security admission quotes it).
   */
  async start(spec: AgentStartSpec, events: AgentEvents): Promise<KubernetesAgentInstance> {
    this.requireOpen('start', spec.name);
    if (spec.mounts !== undefined && spec.mounts.length > 0) {
      throw new RuntimeError(spec.name, 'host directories cannot be mounted into a pod (hostPath volumes break the restricted profile): remove the template\'s mounts', 'mounts');
    }
    const { channels, broker } = this.options;
    if (channels !== undefined && broker === undefined) throw new RuntimeError(spec.name, 'KubernetesRuntime option channels needs option broker');
    const instanceId = randomBytes(8).toString('hex');
    const agentConfig = channels === undefined ? undefined : this.agentConfig(spec, instanceId);
    const manifests = agentManifests({ ...(await this.podSpec(spec)), ...(agentConfig === undefined ? {} : { agentConfig }) });
    const pod = this.options.podOverrides === undefined ? manifests.pod : this.options.podOverrides(structuredClone(manifests.pod));
    this.check(spec.name, { ...manifests, pod });
    const names = agentResourceNames(spec.name);
    const ns = this.namespace;
    const created = async (what: string, create: () => Promise<unknown>, onConflict?: () => Promise<unknown>): Promise<void> => {
      try {
        await create();
      } catch (error) {
        if (isStatus(error, 409) && onConflict !== undefined) {
          try {
            await onConflict();
            return;
          } catch (again) {
            throw apiError(spec.name, `replace ${what}`, again);
          }
        }
        throw apiError(spec.name, `create ${what}`, error);
      }
    };
    await created(`serviceaccount ${names.serviceAccount}`, () => this.core.createNamespacedServiceAccount({ namespace: ns, body: manifests.serviceAccount as never }), async () => undefined);
    await created(`secret ${names.secret}`, () => this.core.createNamespacedSecret({ namespace: ns, body: manifests.secret as never }), () =>
      this.core.replaceNamespacedSecret({ name: names.secret, namespace: ns, body: manifests.secret as never }),
    );
    await created(`persistentvolumeclaim ${names.persistentVolumeClaim}`, () => this.core.createNamespacedPersistentVolumeClaim({ namespace: ns, body: manifests.persistentVolumeClaim as never }), async () => undefined);
    await created(`networkpolicy ${names.networkPolicy}`, () => this.networking.createNamespacedNetworkPolicy({ namespace: ns, body: manifests.networkPolicy as never }), () =>
      this.networking.replaceNamespacedNetworkPolicy({ name: names.networkPolicy, namespace: ns, body: manifests.networkPolicy as never }),
    );
    let channel: RemoteChannel | undefined;
    if (channels !== undefined && broker !== undefined) {
      try {
        await broker.ensureAssignConsumer(spec.name);
      } catch (error) {
        throw new RuntimeError(spec.name, `cannot create the assign consumer its pod uses: ${(error as Error).message}`, undefined, { cause: error });
      }
      // Attached before the pod exists, so that no event of this instance comes before it.
      channel = channels.attach(spec.name, instanceId, events);
    }
    try {
      await created(`pod ${names.pod}`, () => this.core.createNamespacedPod({ namespace: ns, body: pod as never }));
    } catch (error) {
      channel?.close();
      throw error;
    }
    const instance = new KubernetesInstance(spec.name, names.pod, this, () => this.instances.delete(instance), channel);
    this.instances.add(instance);
    try {
      await instance.follow();
    } catch (error) {
      await instance.close();
      throw apiError(spec.name, `watch pod ${names.pod}`, error);
    }
    return instance;
  }

  /**
   * Runs `argv` in the agent's running pod through the exec API (`pods/exec` over WebSocket), its
   * output streamed to `options`. The exit comes from the final `Status` (`Success`, or
   * `NonZeroExitCode` with the code). `pid` is 0; `stop()` closes the connection (the API has no
   * way to signal the command; the kubelet ends it with the stream) and reports `SIGHUP`.
   * @throws {WarrenError} `WARREN_USAGE` for an empty argv; {@link RuntimeError} when the exec cannot start (no such pod, API refusal).
   */
  async exec(agent: AgentSpec, argv: readonly string[], options: AgentExecOptions): Promise<AgentProcess> {
    this.requireOpen('exec', agent.name);
    if (argv.length === 0) throw new WarrenError('WARREN_USAGE', `agent ${agent.name}: exec needs a command`);
    const pod = agentResourceNames(agent.name).pod;
    let settle!: (exit: AgentExit) => void;
    const exited = new Promise<AgentExit>((resolve) => (settle = resolve));
    let status: V1Status | undefined;
    let ws: Awaited<ReturnType<Exec['exec']>>;
    try {
      ws = await new Exec(this.kubeConfig).exec(this.namespace, pod, AGENT_CONTAINER_NAME, [...argv], options.stdout, options.stderr, null, false, (s) => {
        status = s;
      });
    } catch (error) {
      throw apiError(agent.name, `exec in pod ${pod}`, error);
    }
    let stopped = false;
    ws.on('close', () => {
      if (stopped && status === undefined) return settle({ kind: 'signaled', signal: 'SIGHUP' });
      settle(execExit(status));
    });
    let stopping: Promise<AgentExit> | undefined;
    return {
      pid: 0,
      exited,
      stop: () => {
        stopping ??= (async () => {
          stopped = true;
          ws.close();
          return exited;
        })();
        return stopping;
      },
    };
  }

  /** Deletes the agent's pod (its instance has ended) and keeps its PVC and Secret for the next start: the Sleep of a pod. @returns whether a pod was there. */
  async detachStorage(agent: AgentStorageRef): Promise<boolean> {
    return this.deletePodAndWait(agent.name, agentResourceNames(agent.name).pod, 0);
  }

  /** Deletes every object of the agent: pod, PVC, Secret, NetworkPolicy and ServiceAccount (autodelete). Objects already gone are skipped. */
  async releaseStorage(agent: AgentStorageRef): Promise<void> {
    const names = agentResourceNames(agent.name);
    const ns = this.namespace;
    await this.deletePodAndWait(agent.name, names.pod, 0).catch(() => false);
    const gone = async (what: string, remove: () => Promise<unknown>): Promise<void> => {
      try {
        await remove();
      } catch (error) {
        if (!isStatus(error, 404)) throw apiError(agent.name, `delete ${what}`, error);
      }
    };
    await gone(`persistentvolumeclaim ${names.persistentVolumeClaim}`, () => this.core.deleteNamespacedPersistentVolumeClaim({ name: names.persistentVolumeClaim, namespace: ns }));
    await gone(`secret ${names.secret}`, () => this.core.deleteNamespacedSecret({ name: names.secret, namespace: ns }));
    await gone(`networkpolicy ${names.networkPolicy}`, () => this.networking.deleteNamespacedNetworkPolicy({ name: names.networkPolicy, namespace: ns }));
    await gone(`serviceaccount ${names.serviceAccount}`, () => this.core.deleteNamespacedServiceAccount({ name: names.serviceAccount, namespace: ns }));
  }

  /** Ends every pod watch; later `start`, `exec` and `reclaim` throw. Pods keep running. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    for (const instance of this.instances) instance.endWatch();
    this.instances.clear();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- for instances ----

  /** @internal A watch of this namespace's pods matching `labelSelector`, not yet started. */
  watchPods(labelSelector: string, handlers: PodWatchHandlers): PodWatch {
    return new PodWatch(
      this.kubeConfig,
      this.core,
      { namespace: this.namespace, labelSelector, timeoutSeconds: this.options.watchTimeoutSeconds ?? 300, retryMs: this.options.retryMs ?? 1000 },
      handlers,
    );
  }

  /** @internal Deletes a pod with `graceSeconds`; 404 is fine. @returns whether it existed. */
  async deletePod(agent: string, pod: string, graceSeconds: number): Promise<boolean> {
    try {
      await this.core.deleteNamespacedPod({ name: pod, namespace: this.namespace, gracePeriodSeconds: graceSeconds });
      return true;
    } catch (error) {
      if (isStatus(error, 404)) return false;
      throw apiError(agent, `delete pod ${pod}`, error);
    }
  }

  /**
   * @internal Deletes a pod and polls (every 100 ms) until the API server no longer has it.
   * @returns whether it existed.
   * @throws {RuntimeError} when it is still there `graceSeconds` + `deleteTimeoutMs` later.
   */
  async deletePodAndWait(agent: string, pod: string, graceSeconds: number): Promise<boolean> {
    const existed = await this.deletePod(agent, pod, graceSeconds);
    const deadline = Date.now() + graceSeconds * 1000 + (this.options.deleteTimeoutMs ?? 120_000);
    while (existed) {
      try {
        await this.core.readNamespacedPod({ name: pod, namespace: this.namespace });
      } catch (error) {
        if (isStatus(error, 404)) break;
        throw apiError(agent, `read pod ${pod}`, error);
      }
      if (Date.now() > deadline) throw new RuntimeError(agent, `pod ${pod} is still there ${graceSeconds} s + ${this.options.deleteTimeoutMs ?? 120_000} ms after its deletion`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return existed;
  }

  /** @internal The usage of a pod from the metrics API, or null when the API is not served or has no sample yet. */
  async podUsage(pod: string): Promise<AgentUsage | null> {
    let list;
    try {
      list = await new Metrics(this.kubeConfig).getPodMetrics(this.namespace);
    } catch {
      return null;
    }
    const item = list.items.find((i) => i.metadata.name === pod);
    if (item === undefined) return null;
    let cpuCores = 0;
    let memoryBytes = 0;
    for (const c of item.containers) {
      cpuCores += parseQuantity(c.usage.cpu);
      memoryBytes += parseQuantity(c.usage.memory);
    }
    // metrics-server reports a CPU rate over its window, not a total: cpuMs is that rate times the window.
    const windowSeconds = parseDurationSeconds(item.window);
    return { memoryBytes: Math.round(memoryBytes), pids: 0, cpuMs: Math.round(cpuCores * windowSeconds * 1000), pidsRefused: 0, oomKills: 0 };
  }

  /** @internal */
  get metricsIntervalMs(): number {
    return this.options.metricsIntervalMs ?? 15_000;
  }

  /** @internal */
  reportError(error: unknown, context: string): void {
    this.options.onError?.(error, context);
  }

  private selector(): string {
    return `${AGENT_LABELS.name}=${AGENT_APP_NAME},${AGENT_LABELS.managedBy}=warren`;
  }

  private async podSpec(spec: AgentStartSpec): Promise<AgentPodSpec> {
    const o = this.options;
    return {
      agent: spec.name,
      template: spec.template,
      namespace: this.namespace,
      uid: spec.uid,
      gid: spec.gid,
      image: o.image,
      command: o.command ?? ['warren-agent-runner'],
      ...(spec.env === undefined ? {} : { env: spec.env }),
      resources: {
        ...(o.cpuMillis === undefined ? {} : { cpuMillis: o.cpuMillis }),
        memoryMaxBytes: spec.resources.memoryMaxBytes,
        tmpSizeBytes: spec.resources.tmpfsBytes,
        pidsMax: spec.resources.pidsMax,
      },
      ...(spec.homeQuotaBytes === null ? {} : { homeSizeBytes: spec.homeQuotaBytes }),
      ...(o.storageClassName === undefined ? {} : { storageClassName: o.storageClassName }),
      ...(o.labels === undefined ? {} : { labels: o.labels }),
      ...(o.runtimeClassName === undefined ? {} : { runtimeClassName: o.runtimeClassName }),
      brokerEndpoints: o.brokerEndpoints,
      ...(o.gatewayEndpoints === undefined ? {} : { gatewayEndpoints: o.gatewayEndpoints }),
      nats: await o.credentials(spec),
    };
  }

  /** The text of the pod's `~/.warren/agent.json` (read by `warren-pod-agent`, see `PodAgentConfig`). */
  private agentConfig(spec: AgentStartSpec, instance: string): string {
    const master = this.options.signingKey;
    const config = {
      agent: spec.name,
      instance,
      template: spec.template,
      brokerInstance: this.options.broker?.namespace.instance ?? null,
      capabilities: [...spec.capabilities],
      runner: { runtime: spec.runner.runtime, maxConcurrent: spec.runner.maxConcurrent, heartbeatIntervalMs: spec.runner.heartbeatIntervalMs },
      signingKey: master === undefined ? null : Buffer.from(agentSigningKey(master, spec.name)).toString('hex'),
      // The broker credentials come from the Secret's nats.json (mounted read-only there).
      homeFiles: ((spec as PodStartSpec).homeFiles ?? []).filter((f) => f.path !== '.warren/nats.json' && f.path !== '.warren/agent.json'),
    };
    return `${JSON.stringify(config, null, 2)}\n`;
  }

  private check(agent: string, manifests: AgentManifests): void {
    for (const manifest of Object.values(manifests) as unknown[]) {
      const issue = validateManifest(manifest)[0];
      if (issue !== undefined) {
        const m = manifest as { kind?: string; metadata?: { name?: string } };
        throw new RuntimeError(agent, `${m.kind ?? '?'} ${m.metadata?.name ?? '?'} is not a valid manifest: ${issue.path}: ${issue.message} (${issue.rule})`);
      }
    }
    if (this.options.checkRestricted === false) return;
    const violation = checkRestricted(manifests.pod)[0];
    if (violation !== undefined) {
      throw new RuntimeError(agent, `pod ${manifests.pod.metadata?.name ?? '?'} breaks the Pod Security Standards ${violation.level} rule ${violation.rule} at ${violation.path}: ${violation.message}`);
    }
  }

  private requireOpen(what: string, agent: string): void {
    if (this.closed) throw new RuntimeError(agent, `cannot ${what}: the runtime is closed`);
  }
}
