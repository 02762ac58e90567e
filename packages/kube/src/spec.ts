import { isIP } from 'node:net';
import { z } from 'zod';
import { AgentPodSpecError } from './errors.js';
import { isDns1123Label, isDns1123Subdomain, isLabelKey, isLabelValue } from './names.js';

/** 1 MiB in bytes. */
const MiB = 1024 * 1024;
/** 1 GiB in bytes. */
const GiB = 1024 * MiB;

/** Defaults of the optional `AgentPodSpec` fields, each with its unit. */
export const AGENT_POD_DEFAULTS = {
  /** The agent's home inside the pod, where the PVC is mounted. */
  homePath: '/home/agent',
  /** Size the PVC requests: 1 GiB, in bytes. */
  homeSizeBytes: GiB,
  /** CPU request and limit: 1000 millicores (one CPU). */
  cpuMillis: 1000,
  /** Memory request and limit: 1 GiB, in bytes. */
  memoryMaxBytes: GiB,
  /** Size limit of the `/tmp` emptyDir: 64 MiB, in bytes. */
  tmpSizeBytes: 64 * MiB,
  /** `IfNotPresent`, as Kubernetes defaults it for tagged images. */
  imagePullPolicy: 'IfNotPresent',
  /** No DNS: the broker and gateway endpoints are addresses or pod selectors. */
  allowDns: false,
} as const;

/**
 * A destination the agent's pod may open connections to (one NetworkPolicy egress rule):
 * either addresses (`cidr`: an IP block such as `10.0.0.7/32`, or a bare IP, taken as /32 or /128)
 * or pods (`podLabels`, optionally in the namespaces matching `namespaceLabels`; without it, the
 * pod's own namespace). `port` is the TCP port, 1-65535.
 */
export type NetworkEndpoint =
  | { readonly cidr: string; readonly port: number }
  | {
      readonly podLabels: Readonly<Record<string, string>>;
      readonly namespaceLabels?: Readonly<Record<string, string>>;
      readonly port: number;
    };

/**
 * The credentials the agent runner reads from `~/.warren/nats.json` to reach the broker directly:
 * `servers` (NATS URLs, `nats://host:port`, `tls://…`, `ws://…`, `wss://…`), `nkeySeed` (the
 * agent's NKey user seed, `SU…`, 58 characters of base32) and `inboxPrefix` (the subject prefix of
 * its reply inboxes, which its permissions allow, e.g. `_INBOX.coder-1`).
 */
export interface AgentNatsCredentials {
  readonly servers: readonly string[];
  readonly nkeySeed: string;
  readonly inboxPrefix: string;
}

/**
 * Everything the manifest builders need to run one agent as a pod. Every builder takes the same
 * spec; optional fields take the values of `AGENT_POD_DEFAULTS`.
 *
 * - `agent`: the agent's name (`coder-1`); `template`: its template (`coder`). Both become label
 *   values, so each is at most 63 of `A-Za-z0-9-_.`, starting and ending alphanumeric; object names
 *   are derived from `agent` by `agentResourceNames`.
 * - `namespace`: the objects' namespace, a DNS-1123 label; absent, the manifests carry none (the
 *   client's namespace applies).
 * - `uid`, `gid`: the agent's Unix account, 1 to 2147483647 each (never root): the pod runs as them
 *   and `fsGroup` is `gid`, so the home and the credentials are the agent's group's.
 * - `image`: the container image holding the agent runner; `command`: its argv (entrypoint and
 *   arguments, at least one item); `env`: extra environment variables, names `[A-Za-z_][A-Za-z0-9_]*`
 *   (`HOME` is set from `homePath` and may not be given).
 * - `homePath`: an absolute path, where the home PVC is mounted; the credentials sit at
 *   `<homePath>/.warren/nats.json`.
 * - `resources.cpuMillis` (millicores, 1000 = one CPU), `resources.memoryMaxBytes` (bytes): both
 *   request and limit (Guaranteed QoS, so the scheduler reserves what the agent may use);
 *   `resources.tmpSizeBytes` (bytes): the `/tmp` emptyDir's size limit; `resources.pidsMax`:
 *   recorded as the pod annotation `warren.dev/pids-max` (Kubernetes sets PID limits per node, with
 *   the kubelet's `podPidsLimit`, not per pod).
 * - `homeSizeBytes`: the PVC's storage request in bytes; `storageClassName`: its class (absent: the
 *   cluster's default class).
 * - `labels`: extra labels on every object; they may not set `app.kubernetes.io/*` or `warren.dev/*`.
 * - `runtimeClassName`: a RuntimeClass such as `gvisor` or `kata` (a DNS-1123 subdomain).
 * - `brokerEndpoints` (at least one), `gatewayEndpoints` (the LLM gateway): the only egress the
 *   NetworkPolicy allows; `allowDns` adds UDP and TCP port 53 to the cluster DNS (`k8s-app:
 *   kube-dns` in `kube-system`). No ingress is allowed.
 * - `nats`: the agent's broker credentials, stored in the Secret.
 */
export interface AgentPodSpec {
  readonly agent: string;
  readonly template: string;
  readonly namespace?: string;
  readonly uid: number;
  readonly gid: number;
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly command: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly homePath?: string;
  readonly resources?: {
    readonly cpuMillis?: number;
    readonly memoryMaxBytes?: number;
    readonly tmpSizeBytes?: number;
    readonly pidsMax?: number;
  };
  readonly homeSizeBytes?: number;
  readonly storageClassName?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly runtimeClassName?: string;
  readonly brokerEndpoints: readonly NetworkEndpoint[];
  readonly gatewayEndpoints?: readonly NetworkEndpoint[];
  readonly allowDns?: boolean;
  readonly nats: AgentNatsCredentials;
  /**
   * The text of the agent's `~/.warren/agent.json` (what `warren-pod-agent` reads: agent,
   * instance, runner settings, signing key), kept in the Secret beside `nats.json` and mounted the
   * same way. Default none (the pod's program needs no such file).
   */
  readonly agentConfig?: string;
}

/** An `AgentPodSpec` with every default applied, as `resolveAgentPodSpec` returns it. */
export interface ResolvedAgentPodSpec {
  readonly agent: string;
  readonly template: string;
  readonly namespace: string | undefined;
  readonly uid: number;
  readonly gid: number;
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly homePath: string;
  readonly resources: {
    readonly cpuMillis: number;
    readonly memoryMaxBytes: number;
    readonly tmpSizeBytes: number;
    readonly pidsMax: number | undefined;
  };
  readonly homeSizeBytes: number;
  readonly storageClassName: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly runtimeClassName: string | undefined;
  readonly brokerEndpoints: readonly NetworkEndpoint[];
  readonly gatewayEndpoints: readonly NetworkEndpoint[];
  readonly allowDns: boolean;
  readonly nats: AgentNatsCredentials;
  readonly agentConfig: string | undefined;
}

const MAX_ID = 2_147_483_647;
const id = z.number().int('must be an integer').min(1, 'must be at least 1 (never root)').max(MAX_ID, `must be at most ${MAX_ID}`);
const positiveInt = z.number().int('must be an integer').min(1, 'must be at least 1').max(Number.MAX_SAFE_INTEGER, 'is too large');
const labelValue = z.string().refine(isLabelValue, 'must be a label value: at most 63 of A-Za-z0-9-_. starting and ending alphanumeric');
const nonEmptyLabelValue = labelValue.refine((v) => v !== '', 'must not be empty');
const labelMap = z.record(
  z.string().refine(isLabelKey, 'must be a label key: an optional DNS-1123 subdomain and /, then at most 63 of A-Za-z0-9-_.'),
  labelValue,
);
const port = z.number().int('must be an integer').min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535');

const cidr = z.string().refine((value) => {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}, 'must be an IP address or CIDR block such as 10.0.0.7/32');

const endpoint = z.union([
  z.strictObject({ cidr, port }),
  z.strictObject({ podLabels: labelMap, namespaceLabels: labelMap.optional(), port }),
]);

const natsUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return ['nats:', 'tls:', 'ws:', 'wss:'].includes(url.protocol) && url.hostname !== '';
  } catch {
    return false;
  }
}, 'must be a NATS URL such as nats://10.0.0.7:4222 (nats, tls, ws or wss)');

const schema = z.strictObject({
  agent: nonEmptyLabelValue,
  template: nonEmptyLabelValue,
  namespace: z.string().refine(isDns1123Label, 'must be a DNS-1123 label: at most 63 of a-z0-9- starting and ending alphanumeric').optional(),
  uid: id,
  gid: id,
  image: z.string().regex(/^[^\s]+$/, 'must be an image reference without whitespace'),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default(AGENT_POD_DEFAULTS.imagePullPolicy),
  command: z.array(z.string()).min(1, 'must hold the program to run'),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name [A-Za-z_][A-Za-z0-9_]*'), z.string())
    .superRefine((env, ctx) => {
      if ('HOME' in env) ctx.addIssue({ code: 'custom', path: ['HOME'], message: 'must not be set (HOME is homePath)' });
    })
    .default({}),
  homePath: z
    .string()
    .regex(/^(\/[^\0/]+)+$/, 'must be an absolute path without a trailing /, such as /home/agent')
    .refine((p) => !p.split('/').includes('..') && p !== '/tmp' && !p.startsWith('/tmp/'), 'must not be under /tmp or hold ..')
    .default(AGENT_POD_DEFAULTS.homePath),
  resources: z
    .strictObject({
      cpuMillis: positiveInt.default(AGENT_POD_DEFAULTS.cpuMillis),
      memoryMaxBytes: positiveInt.default(AGENT_POD_DEFAULTS.memoryMaxBytes),
      tmpSizeBytes: positiveInt.default(AGENT_POD_DEFAULTS.tmpSizeBytes),
      pidsMax: positiveInt.optional(),
    })
    .default({ cpuMillis: AGENT_POD_DEFAULTS.cpuMillis, memoryMaxBytes: AGENT_POD_DEFAULTS.memoryMaxBytes, tmpSizeBytes: AGENT_POD_DEFAULTS.tmpSizeBytes }),
  homeSizeBytes: positiveInt.default(AGENT_POD_DEFAULTS.homeSizeBytes),
  storageClassName: z.string().refine(isDns1123Subdomain, 'must be a DNS-1123 subdomain').optional(),
  labels: labelMap
    .superRefine((labels, ctx) => {
      for (const key of Object.keys(labels)) {
        if (/^(app\.kubernetes\.io|warren\.dev)\//.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'must not be set: Warren sets the app.kubernetes.io/ and warren.dev/ labels' });
      }
    })
    .default({}),
  runtimeClassName: z.string().refine(isDns1123Subdomain, 'must be a RuntimeClass name (a DNS-1123 subdomain)').optional(),
  brokerEndpoints: z.array(endpoint).min(1, 'must name at least one broker endpoint'),
  gatewayEndpoints: z.array(endpoint).default([]),
  allowDns: z.boolean().default(AGENT_POD_DEFAULTS.allowDns),
  nats: z.strictObject({
    servers: z.array(natsUrl).min(1, 'must name at least one NATS server'),
    nkeySeed: z.string().regex(/^SU[A-Z2-7]{56}$/, 'must be an NKey user seed (SU followed by 56 base32 characters)'),
    inboxPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a NATS subject without wildcards such as _INBOX.coder-1'),
  }),
  agentConfig: z.string().min(2).max(65_536).optional(),
});

/** Writes a zod issue path as the dotted field path of `AgentPodSpecError` (`brokerEndpoints[0].port`). */
function fieldOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

/** The value at `path` in `root`, or undefined when any step is missing. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const segment of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[segment];
  }
  return node;
}

/**
 * Checks `spec` and applies the defaults of `AGENT_POD_DEFAULTS`.
 * @throws {AgentPodSpecError} naming the first invalid or unknown field (`field`, e.g. `uid`,
 *   `resources.memoryMaxBytes`, `env.HOME`, `brokerEndpoints[0].cidr`).
 */
export function resolveAgentPodSpec(spec: AgentPodSpec): ResolvedAgentPodSpec {
  const parsed = schema.safeParse(spec);
  if (parsed.success) {
    const d = parsed.data;
    return {
      ...d,
      namespace: d.namespace,
      storageClassName: d.storageClassName,
      runtimeClassName: d.runtimeClassName,
      agentConfig: d.agentConfig,
      resources: { ...d.resources, pidsMax: d.resources.pidsMax },
    };
  }
  const issue = parsed.error.issues[0];
  if (issue === undefined) throw new AgentPodSpecError('(spec)', 'is invalid');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    throw new AgentPodSpecError(fieldOf([...issue.path, key]), 'is not an AgentPodSpec field');
  }
  if (issue.code === 'invalid_union') {
    throw new AgentPodSpecError(fieldOf(issue.path), 'must be { cidr, port } or { podLabels, namespaceLabels?, port }');
  }
  const field = issue.path.length === 0 ? '(spec)' : fieldOf(issue.path);
  let message = issue.message;
  if (issue.code === 'invalid_type' && valueAt(spec, issue.path) === undefined) message = 'is required';
  if (issue.code === 'invalid_key') message = issue.issues[0]?.message ?? message;
  throw new AgentPodSpecError(field, message);
}
