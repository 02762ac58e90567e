/**
 * The public types of the fake Kubernetes API server ({@link startFakeKubeApi} in `./server.ts`).
 */
import type { PodSecurityLevel } from './pod-security.js';

/** A Kubernetes object as JSON: `apiVersion`, `kind`, `metadata`, and the kind's own fields. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeObjectMeta;
  [field: string]: unknown;
}

/** The `metadata` of a {@link KubeObject} (meta/v1 `ObjectMeta`), the fields the fake reads or sets. */
export interface KubeObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  /** The global counter's value at the object's last write, as a decimal string. */
  resourceVersion?: string;
  generation?: number;
  /** RFC 3339 time, seconds precision, UTC. */
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
  [field: string]: unknown;
}

/** The resources the fake serves, by their plural names. */
export type FakeKubeResource =
  | 'namespaces'
  | 'pods'
  | 'persistentvolumeclaims'
  | 'secrets'
  | 'serviceaccounts'
  | 'configmaps'
  | 'events'
  | 'networkpolicies';

/** A kubeconfig in the shape `KubeConfig.loadFromOptions()` of `@kubernetes/client-node` takes. */
export interface FakeKubeConfig {
  clusters: { name: string; server: string; skipTLSVerify: boolean }[];
  users: { name: string; token?: string }[];
  contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  currentContext: string;
}

/** One request the fake answered, in arrival order. */
export interface FakeKubeRequest {
  readonly method: string;
  /** Path and query, such as `/api/v1/namespaces/default/pods?labelSelector=app%3Dx`. */
  readonly url: string;
  readonly contentType: string | undefined;
  /** The HTTP status it was answered with (200 for watches, whatever they later carry). */
  status: number;
}

/** A container's state in a pod's status (core/v1 `ContainerState`). */
export interface FakeContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; signal?: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string; containerID?: string };
}

/** A container's status entry (core/v1 `ContainerStatus`), what the fake writes and a test may give. */
export interface FakeContainerStatus {
  name: string;
  state?: FakeContainerState;
  lastState?: FakeContainerState;
  ready: boolean;
  restartCount: number;
  image: string;
  imageID: string;
  started?: boolean;
  containerID?: string;
}

/** What {@link FakeKubeApi.setPodPhase} writes into a pod's `status`; absent fields keep their value. */
export interface FakePodStatusUpdate {
  /** Pod phase: `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`. */
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  /** A brief CamelCase reason for the phase, such as `Evicted`. */
  reason?: string;
  message?: string;
  containerStatuses?: FakeContainerStatus[];
  initContainerStatuses?: FakeContainerStatus[];
  conditions?: { type: string; status: 'True' | 'False' | 'Unknown'; reason?: string; message?: string; lastTransitionTime?: string }[];
  podIP?: string;
  /** The node the pod is bound to (`spec.nodeName`); default the fake's node once the pod leaves `Pending`. */
  nodeName?: string;
}

/** How a pod's container ended in {@link FakeKubeApi.finishPod}. */
export interface FakePodExit {
  /** The main process's exit code; 0 makes the pod `Succeeded`, anything else `Failed`. */
  exitCode: number;
  /** `terminated.reason`; default `Completed` for 0, else `Error`. */
  reason?: string;
  message?: string;
  /** Which containers end; default all of them. */
  containers?: readonly string[];
}

/** One `exec` into a running pod's container, as {@link StartFakeKubeApiOptions.onPodExec} gets it. */
export interface FakeExecRequest {
  /** A copy of the pod. */
  readonly pod: KubeObject;
  /** The container named by `?container=` (or the pod's only one). */
  readonly container: string;
  /** The command and its arguments (`?command=` repeated). */
  readonly command: readonly string[];
  readonly tty: boolean;
  /** The client's stdin when it asked for it (`?stdin=true`); ends when the client closes it. */
  readonly stdin: NodeJS.ReadableStream | undefined;
  /** Where the command's output goes, when the client asked for it. */
  readonly stdout: NodeJS.WritableStream | undefined;
  readonly stderr: NodeJS.WritableStream | undefined;
  /** Aborted when the client disconnects or the server closes. */
  readonly signal: AbortSignal;
}

/** Runs an exec's command and resolves with its exit code (0 answers `Success`, anything else `NonZeroExitCode`). */
export type FakeExecHandler = (request: FakeExecRequest, api: FakeKubeApi) => number | Promise<number>;

/** A hook the fake runs on a pod, the place where a runner starts or stops its process. */
export type FakePodHook = (pod: KubeObject, api: FakeKubeApi) => void | Promise<void>;

/** Options of {@link startFakeKubeApi}. */
export interface StartFakeKubeApiOptions {
  /** TCP port on 127.0.0.1; default 0, a free one. */
  port?: number;
  /** Namespaces made at start, each labelled `pod-security.kubernetes.io/enforce: <podSecurityLevel>`; default `['default']`. */
  namespaces?: readonly string[];
  /**
   * The Pod Security Standards level the fake's own namespaces are labelled with, and the level a
   * namespace without the label is held to (the cluster default of the `PodSecurity` admission
   * configuration). Default `restricted`.
   */
  podSecurityLevel?: PodSecurityLevel;
  /** When set, every request needs `Authorization: Bearer <token>` (else 401); the kubeconfig carries it. */
  token?: string;
  /** Watch events kept for resuming watches; older resource versions get 410 Expired. Default 1000. */
  historyLimit?: number;
  /** Interval of `BOOKMARK` events on watches that ask for them (`allowWatchBookmarks=true`), in ms. Default 60000. */
  bookmarkIntervalMs?: number;
  /**
   * Runs `exec` requests (`GET …/pods/{name}/exec` upgraded to WebSocket, `v5.channel.k8s.io` or
   * `v4.channel.k8s.io`) into running pods: where a runner executes the command in the pod's
   * sandbox. Without it every exec ends with a Failure `Status`. A rejection ends the exec with an
   * InternalError `Status`.
   */
  onPodExec?: FakeExecHandler;
  /**
   * Whether the resource metrics API (`/apis/metrics.k8s.io/v1beta1`, what metrics-server serves)
   * is present; usage comes from {@link FakeKubeApi.setPodMetrics}. Default false: the group is not
   * served (404), as on a cluster without metrics-server.
   */
  metricsServer?: boolean;
  /** The node pods are bound to when they leave `Pending`. Default `fake-node`. */
  nodeName?: string;
  /**
   * Runs after a pod is created and its ADDED event sent: where a runner starts the pod's process
   * (for example as a Warren sandbox) and reports progress with `setPodPhase`/`runPod`/`finishPod`.
   * A rejection or throw is kept in {@link FakeKubeApi.hookErrors}.
   */
  onPodCreated?: FakePodHook;
  /**
   * Runs when a scheduled, not yet finished pod is deleted gracefully, after its `deletionTimestamp`
   * is set: where a runner stops the pod's process. The pod is removed when it settles. A running
   * pod deleted with grace 0 is removed at once and the hook runs after, with grace 0.
   */
  onPodDeleting?: FakePodHook;
}

/**
 * A running fake Kubernetes API server: plain HTTP on 127.0.0.1 that `@kubernetes/client-node`
 * talks to through {@link FakeKubeApi.kubeconfig}, with helpers that play the scheduler and the
 * kubelet for pods.
 */
export interface FakeKubeApi extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Every request answered so far, in order. */
  readonly requests: readonly FakeKubeRequest[];
  /** Errors thrown by `onPodCreated`/`onPodDeleting` hooks, in order. */
  readonly hookErrors: readonly unknown[];
  /**
   * A kubeconfig for this server (cluster `fake`, user `fake`, context `fake`) in the shape
   * `KubeConfig.loadFromOptions()` takes; `skipTLSVerify` is true because the server is plain HTTP.
   * @param namespace the context's default namespace; default `default`.
   */
  kubeconfig(namespace?: string): FakeKubeConfig;
  /** The same kubeconfig as a kubeconfig file's text (YAML; written as JSON, which YAML reads), for `KUBECONFIG`. */
  kubeconfigYaml(namespace?: string): string;
  /** The current value of the global resource version counter. */
  resourceVersion(): number;
  /** A copy of a stored object, or undefined; `namespace` is ignored for cluster-scoped resources. */
  getObject(resource: FakeKubeResource, namespace: string, name: string): KubeObject | undefined;
  /** Copies of the stored objects of a resource, in one namespace or all, ordered by namespace and name. */
  listObjects(resource: FakeKubeResource, namespace?: string): KubeObject[];
  /**
   * Writes a pod's status as the kubelet would and sends MODIFIED to watches. Leaving `Pending` binds
   * the pod to a node (`spec.nodeName`) and sets `startTime` and a `PodScheduled` condition.
   * @returns a copy of the updated pod.
   * @throws {Error} if the pod does not exist.
   */
  setPodPhase(namespace: string, name: string, update: FakePodStatusUpdate): KubeObject;
  /** Marks a pod `Running` with every container running and ready (one MODIFIED). */
  runPod(namespace: string, name: string): KubeObject;
  /**
   * Ends a pod's containers with an exit code: under `restartPolicy: Never` (or `OnFailure` with
   * code 0) the pod becomes `Succeeded`/`Failed`; otherwise the kubelet would restart it, so the pod
   * stays `Running`, the container waits in `CrashLoopBackOff` with the exit in `lastState` and one
   * more `restartCount`.
   */
  finishPod(namespace: string, name: string, exit: FakePodExit): KubeObject;
  /** {@link finishPod} with exit code 137 and reason `OOMKilled`, as the kubelet reports a container the kernel killed for memory. */
  oomKillPod(namespace: string, name: string, containers?: readonly string[]): KubeObject;
  /**
   * Evicts a pod as the kubelet does under node pressure: phase `Failed`, `status.reason: Evicted`,
   * a `DisruptionTarget` condition, containers terminated with 137.
   */
  evictPod(namespace: string, name: string, message?: string): KubeObject;
  /** Sets the text `GET …/pods/<name>/log` answers. */
  setPodLog(namespace: string, name: string, text: string): void;
  /**
   * Sets a pod's container usage for the metrics API (with `metricsServer: true`): quantities as
   * metrics-server writes them, `cpu` in cores (`'250m'`, `'1234567n'`), `memory` in bytes (`'64Mi'`, `'123456Ki'`).
   * @throws {Error} if the pod does not exist.
   */
  setPodMetrics(namespace: string, name: string, containers: readonly { name: string; cpu: string; memory: string }[]): void;
  /** Drops the kept watch history, as etcd compaction does: watches from an older resource version get 410 Expired. */
  compact(): void;
  /**
   * Ends open watches, stops listening and closes connections. Idempotent (the same promise every
   * time). It does not wait for hooks still running; a hook that started something stops it itself.
   */
  close(): Promise<void>;
}
