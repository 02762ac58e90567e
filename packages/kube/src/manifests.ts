import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { IIoK8sApimachineryPkgApisMetaV1ObjectMeta as ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { agentResourceNames } from './names.js';
import { resolveAgentPodSpec } from './spec.js';
import type { AgentPodSpec, NetworkEndpoint, ResolvedAgentPodSpec } from './spec.js';

/** Label keys Warren puts on every object of an agent; `warren.dev/agent` selects them. */
export const AGENT_LABELS = {
  name: 'app.kubernetes.io/name',
  managedBy: 'app.kubernetes.io/managed-by',
  agent: 'warren.dev/agent',
  template: 'warren.dev/template',
} as const;

/** `app.kubernetes.io/name` of every agent object. */
export const AGENT_APP_NAME = 'warren-agent';
/** The pod annotation recording `resources.pidsMax`. */
export const PIDS_MAX_ANNOTATION = 'warren.dev/pids-max';
/** The agent's container in the pod. */
export const AGENT_CONTAINER_NAME = 'agent';
/** The Secret's key, and the file name under `<homePath>/.warren/`, of the broker credentials. */
export const NATS_CREDENTIALS_KEY = 'nats.json';
/** The Secret's key, and the file name under `<homePath>/.warren/`, of the pod program's settings (when the spec has `agentConfig`). */
export const AGENT_CONFIG_KEY = 'agent.json';
/** File mode of the mounted credentials: 0400 (kubelet adds group read for `fsGroup`, the agent's gid). */
export const NATS_CREDENTIALS_MODE = 0o400;

const KiB = 1024;

/**
 * A byte count as a Kubernetes quantity: `Gi`, `Mi` or `Ki` when it is an exact multiple, else the
 * plain number of bytes (Kubernetes `resource.Quantity`, binary SI suffixes).
 * @example bytesQuantity(536870912) === '512Mi'
 */
export function bytesQuantity(bytes: number): string {
  for (const [suffix, size] of [['Gi', KiB ** 3], ['Mi', KiB ** 2], ['Ki', KiB]] as const) {
    if (bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

/**
 * Millicores as a Kubernetes CPU quantity: whole CPUs as a number (`'2'`), else `<n>m` (`'500m'`).
 */
export function cpuQuantity(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

/** The labels of every object of the agent: Warren's four, then the spec's extra labels sorted by key. */
function labelsOf(spec: ResolvedAgentPodSpec): Record<string, string> {
  const extra = Object.keys(spec.labels)
    .sort()
    .map((key) => [key, spec.labels[key] ?? ''] as const);
  return {
    [AGENT_LABELS.name]: AGENT_APP_NAME,
    [AGENT_LABELS.managedBy]: 'warren',
    [AGENT_LABELS.agent]: spec.agent,
    [AGENT_LABELS.template]: spec.template,
    ...Object.fromEntries(extra),
  };
}

function metadataOf(spec: ResolvedAgentPodSpec, name: string, annotations?: Record<string, string>): ObjectMeta {
  return {
    name,
    ...(spec.namespace === undefined ? {} : { namespace: spec.namespace }),
    labels: labelsOf(spec),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/** Accepts either an `AgentPodSpec` or one `resolveAgentPodSpec` already checked. */
type SpecInput = AgentPodSpec | ResolvedAgentPodSpec;

function resolved(spec: SpecInput): ResolvedAgentPodSpec {
  return resolveAgentPodSpec(spec);
}

/**
 * The agent's Pod: one container `agent` running `command` in `image` as the agent's uid and gid
 * under the Pod Security Standards "restricted" profile (non-root, all capabilities dropped, seccomp
 * `RuntimeDefault`, no privilege escalation) with a read-only root filesystem; the home PVC mounted
 * at `homePath`, an emptyDir at `/tmp`, the Secret's `nats.json` read-only (0400) at
 * `<homePath>/.warren/nats.json` (and `agent.json` beside it with `agentConfig`); no service
 * account token, no service links, `restartPolicy: Never` (a finished agent stays finished; the supervisor decides what runs next).
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function podManifest(input: SpecInput): IPod {
  const spec = resolved(input);
  const names = agentResourceNames(spec.agent);
  const env: Record<string, string> = { HOME: spec.homePath, ...spec.env };
  const quantities = { cpu: cpuQuantity(spec.resources.cpuMillis), memory: bytesQuantity(spec.resources.memoryMaxBytes) };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadataOf(spec, names.pod, spec.resources.pidsMax === undefined ? undefined : { [PIDS_MAX_ANNOTATION]: String(spec.resources.pidsMax) }),
    spec: {
      serviceAccountName: names.serviceAccount,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      restartPolicy: 'Never',
      ...(spec.runtimeClassName === undefined ? {} : { runtimeClassName: spec.runtimeClassName }),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: spec.uid,
        runAsGroup: spec.gid,
        fsGroup: spec.gid,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: AGENT_CONTAINER_NAME,
          image: spec.image,
          imagePullPolicy: spec.imagePullPolicy,
          command: [...spec.command],
          workingDir: spec.homePath,
          env: Object.keys(env)
            .sort()
            .map((name) => ({ name, value: env[name] ?? '' })),
          resources: { requests: { ...quantities }, limits: { ...quantities } },
          securityContext: {
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            runAsUser: spec.uid,
            runAsGroup: spec.gid,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationMessagePolicy: 'FallbackToLogsOnError',
          volumeMounts: [
            { name: 'home', mountPath: spec.homePath },
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'nats', mountPath: `${spec.homePath}/.warren/${NATS_CREDENTIALS_KEY}`, subPath: NATS_CREDENTIALS_KEY, readOnly: true },
            ...(spec.agentConfig === undefined
              ? []
              : [{ name: 'nats', mountPath: `${spec.homePath}/.warren/${AGENT_CONFIG_KEY}`, subPath: AGENT_CONFIG_KEY, readOnly: true }]),
          ],
        },
      ],
      volumes: [
        { name: 'home', persistentVolumeClaim: { claimName: names.persistentVolumeClaim } },
        { name: 'tmp', emptyDir: { sizeLimit: bytesQuantity(spec.resources.tmpSizeBytes) } },
        {
          name: 'nats',
          secret: {
            secretName: names.secret,
            defaultMode: NATS_CREDENTIALS_MODE,
            items: [
              { key: NATS_CREDENTIALS_KEY, path: NATS_CREDENTIALS_KEY, mode: NATS_CREDENTIALS_MODE },
              ...(spec.agentConfig === undefined ? [] : [{ key: AGENT_CONFIG_KEY, path: AGENT_CONFIG_KEY, mode: NATS_CREDENTIALS_MODE }]),
            ],
          },
        },
      ],
    },
  };
}

/**
 * The PersistentVolumeClaim holding the agent's home: `ReadWriteOnce`, `Filesystem`, requesting
 * `homeSizeBytes`, of `storageClassName` when given. It outlives the pod (an agent put to sleep keeps
 * its home) and goes only when the agent is removed.
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function pvcManifest(input: SpecInput): IPersistentVolumeClaim {
  const spec = resolved(input);
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: metadataOf(spec, agentResourceNames(spec.agent).persistentVolumeClaim),
    spec: {
      accessModes: ['ReadWriteOnce'],
      volumeMode: 'Filesystem',
      ...(spec.storageClassName === undefined ? {} : { storageClassName: spec.storageClassName }),
      resources: { requests: { storage: bytesQuantity(spec.homeSizeBytes) } },
    },
  };
}

/**
 * The JSON the runner reads from `~/.warren/nats.json`: `{ "servers": [...], "nkeySeed": "SU…",
 * "inboxPrefix": "…" }`, two-space indented, ending in a newline.
 */
export function natsCredentialsJson(input: SpecInput): string {
  const { nats } = resolved(input);
  return `${JSON.stringify({ servers: nats.servers, nkeySeed: nats.nkeySeed, inboxPrefix: nats.inboxPrefix }, null, 2)}\n`;
}

/**
 * The Opaque Secret holding the agent's broker credentials under the key `nats.json` (base64 in
 * `data`, as the API server stores it; the content is `natsCredentialsJson`) and, when the spec has
 * `agentConfig`, the pod program's settings under `agent.json`.
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function secretManifest(input: SpecInput): ISecret {
  const spec = resolved(input);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadataOf(spec, agentResourceNames(spec.agent).secret),
    type: 'Opaque',
    data: {
      [NATS_CREDENTIALS_KEY]: Buffer.from(natsCredentialsJson(spec), 'utf8').toString('base64'),
      ...(spec.agentConfig === undefined ? {} : { [AGENT_CONFIG_KEY]: Buffer.from(spec.agentConfig, 'utf8').toString('base64') }),
    },
  };
}

/** One egress rule: TCP `port` (or `protocols`) to the endpoint's addresses or pods. */
function egressRule(endpoint: NetworkEndpoint): INetworkPolicyEgressRule {
  const ports = [{ protocol: 'TCP' as const, port: endpoint.port }];
  if ('cidr' in endpoint) {
    const cidr = endpoint.cidr.includes('/') ? endpoint.cidr : `${endpoint.cidr}/${endpoint.cidr.includes(':') ? 128 : 32}`;
    return { to: [{ ipBlock: { cidr } }], ports };
  }
  return {
    to: [
      {
        podSelector: { matchLabels: { ...endpoint.podLabels } },
        ...(endpoint.namespaceLabels === undefined ? {} : { namespaceSelector: { matchLabels: { ...endpoint.namespaceLabels } } }),
      },
    ],
    ports,
  };
}

/**
 * The agent's NetworkPolicy: selects the agent's pod, allows no ingress, and allows egress only to
 * `brokerEndpoints`, then `gatewayEndpoints`, then (with `allowDns`) UDP and TCP 53 to the cluster
 * DNS pods (`k8s-app: kube-dns` in the namespace `kube-system`). Enforced by the cluster's network
 * plugin (Calico, Cilium, …); a cluster without one ignores it.
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function networkPolicyManifest(input: SpecInput): INetworkPolicy {
  const spec = resolved(input);
  const egress = [...spec.brokerEndpoints, ...spec.gatewayEndpoints].map(egressRule);
  if (spec.allowDns) {
    egress.push({
      to: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
          podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        },
      ],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    });
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: metadataOf(spec, agentResourceNames(spec.agent).networkPolicy),
    spec: {
      podSelector: { matchLabels: { [AGENT_LABELS.name]: AGENT_APP_NAME, [AGENT_LABELS.agent]: spec.agent } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress,
    },
  };
}

/**
 * The agent's ServiceAccount, with `automountServiceAccountToken: false`: the pod gets no API token
 * (the runner talks to the broker, never to the Kubernetes API).
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function serviceAccountManifest(input: SpecInput): IServiceAccount {
  const spec = resolved(input);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: metadataOf(spec, agentResourceNames(spec.agent).serviceAccount),
    automountServiceAccountToken: false,
  };
}

/** The five objects of one agent, as `agentManifests` returns them. */
export interface AgentManifests {
  readonly serviceAccount: IServiceAccount;
  readonly secret: ISecret;
  readonly persistentVolumeClaim: IPersistentVolumeClaim;
  readonly networkPolicy: INetworkPolicy;
  readonly pod: IPod;
}

/**
 * All five objects of the agent from one spec check; create them in the order of the fields
 * (ServiceAccount, Secret, PVC and NetworkPolicy before the Pod that uses them).
 * @throws {AgentPodSpecError} if the spec is invalid, naming the field.
 */
export function agentManifests(input: AgentPodSpec): AgentManifests {
  const spec = resolveAgentPodSpec(input);
  return {
    serviceAccount: serviceAccountManifest(spec),
    secret: secretManifest(spec),
    persistentVolumeClaim: pvcManifest(spec),
    networkPolicy: networkPolicyManifest(spec),
    pod: podManifest(spec),
  };
}
