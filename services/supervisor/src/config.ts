import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, parseBytes, parseDurationMs } from '@warren/core';
import { parseListenAddress } from '@warren/http';
import { CrashPoint } from './crash.js';
import { DEFAULT_DISK_RESERVE, parseDiskReserve, type DiskReserveSpec } from './disk.js';
import { LABEL_KEY, LABEL_VALUE } from './templates.js';

/**
 * Options a person gives the supervisor (CLI flags and environment). Paths default to the
 * repository's own folders under `root`; durations may say '30s'.
 */
export const SupervisorOptions = z
  .object({
    /** The repository root: the base of every default path and of template mounts. */
    root: z.string().default('.'),
    board: z.string().optional(),
    /** The board's format; detected when absent (warren, backlog-md, obsidian, json-config). */
    format: z.enum(['warren', 'backlog-md', 'obsidian', 'json-config']).optional(),
    /** A YAML or JSON file mapping another tool's statuses, priorities and tags onto Warren's. */
    mapping: z.string().optional(),
    agents: z.string().optional(),
    home: z.string().optional(),
    /** Agent uids and gids come from this inclusive range, `MIN-MAX` (default 1900000000-1900999999). */
    uidRange: z
      .string()
      .regex(/^\d+-\d+$/, "must be 'MIN-MAX', e.g. 1900000000-1900999999")
      .default('1900000000-1900999999'),
    /** What a new home is copied from (default: `<root>/home/skel`). */
    skeleton: z.string().optional(),
    policies: z.string().optional(),
    /** The LLM providers' folder (default `<root>/providers`). */
    providers: z.string().optional(),
    /** Where the coding-agent CLIs are installed (default `<root>/tools/agent-clis`, see scripts/agent-clis.sh). */
    agentClis: z.string().optional(),
    stateDir: z.string().optional(),
    /**
     * An external NATS server, or several servers of one NATS cluster separated by commas; when
     * absent the supervisor runs its own nats-server child.
     */
    natsUrl: z.string().min(1).optional(),
    /**
     * How many servers keep each JetStream stream (1 to 5). Default: 1 with one URL, 3 (at most
     * the number of URLs) with several.
     */
    natsReplicas: z.number().int().min(1).max(5).optional(),
    /** A NATS credentials file (user JWT and nkey seed) for `natsUrl`. */
    natsCreds: z.string().optional(),
    /** A NATS user for `natsUrl` (the password comes from `natsPassword`). */
    natsUser: z.string().min(1).optional(),
    /** The password of `natsUser` (from the environment, `NATS_PASSWORD`). */
    natsPassword: z.string().optional(),
    /**
     * The name of this Warren instance on NATS: every subject, stream and consumer carries it
     * (default: derived from the state directory).
     */
    instance: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be 1 to 32 of [a-z0-9_-], starting with a letter or digit').optional(),
    /** Kubernetes namespace of agents whose template says `placement.target: kubernetes` (default `warren`). */
    kubeNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS-1123 label such as warren').optional(),
    /** The image of agent pods (holding `warren-pod-agent` and the agent runner); giving it turns the kubernetes target on. */
    kubeImage: z.string().min(1).optional(),
    /** The kubeconfig context to use (default: the current context of KUBECONFIG or ~/.kube/config, else in-cluster). */
    kubeContext: z.string().min(1).optional(),
    /** A RuntimeClass for agent pods (`gvisor`, `kata`). */
    kubeRuntimeClass: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a RuntimeClass name such as gvisor').optional(),
    tickInterval: z.union([z.string(), z.number()]).default('200ms'),
    killGrace: z.union([z.string(), z.number()]).default('5s'),
    boardRescan: z.union([z.string(), z.number()]).default('2s'),
    maxAttempts: z.number().int().min(1).max(100).default(3),
    aging: z.union([z.string(), z.number()]).default('5m'),
    heartbeatTimeout: z.union([z.string(), z.number()]).default('20s'),
    restartBackoff: z.union([z.string(), z.number()]).default('1s'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
    /**
     * Free space kept on the state directory's filesystem: below it no new work starts. A size
     * ('256MiB'), a share ('5%'), both ('256MiB,5%': the smaller), or '0' (none).
     */
    diskReserve: z.string().default(DEFAULT_DISK_RESERVE),
    /**
     * Where the HTTP API and dashboard listen: `host:port` (`127.0.0.1:7070`, `[::1]:7070`; port 0
     * picks a free one) or `off` (default: off; `warren up` defaults to `127.0.0.1:7070`).
     */
    http: z.string().default('off'),
    /** The ed25519 key that signs audit checkpoints (default: `<stateDir>/audit-signing.key`). */
    auditKey: z.string().optional(),
    /** The name of the supervisor's own host as a node (the embedded node), `[a-z][a-z0-9-]{0,62}`. */
    nodeName: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be 1 to 63 of [a-z0-9-], starting with a letter').default('local'),
    /** The embedded node's labels, `key=value` separated by commas (`zone=a,gpu=1`). */
    nodeLabels: z.string().default(''),
    /** Agents the embedded node runs at most (default: no limit). */
    nodeMaxAgents: z.number().int().min(0).max(100_000).optional(),
    /** Memory the embedded node gives its agents ('8GiB'; default: the host's total memory). */
    nodeMemory: z.union([z.string(), z.number()]).optional(),
    /** False: no agent runs on the supervisor's host, only on `warren node` hosts (`--no-local-node`). */
    localNode: z.boolean().default(true),
    /** Test builds only: die with SIGKILL at this fault-injection point (see `CrashPoint`). */
    crashAt: z.enum(Object.values(CrashPoint) as [CrashPoint, ...CrashPoint[]]).optional(),
  })
  .strict();
export type SupervisorOptions = z.input<typeof SupervisorOptions>;

/** Resolved configuration: absolute paths, durations in ms. Frozen. */
export interface SupervisorConfig {
  readonly root: string;
  readonly boardDir: string;
  /** The board format asked for, or undefined to detect it. */
  readonly boardFormat: 'warren' | 'backlog-md' | 'obsidian' | 'json-config' | undefined;
  /** The board mapping file, if one was given. */
  readonly boardMappingPath: string | undefined;
  readonly agentsDir: string;
  readonly homeRoot: string;
  /** The inclusive range agent uids and gids are taken from. */
  readonly uidMin: number;
  readonly uidMax: number;
  /** The directory new homes are copied from. */
  readonly skeletonDir: string;
  readonly policiesDir: string;
  /** The LLM providers' folder: one YAML file per provider (see `providers.ts`). */
  readonly providersDir: string;
  /** Where the coding-agent CLIs are installed; bound read-only into sandboxes at /opt/warren/clis. */
  readonly agentClisDir: string;
  readonly stateDir: string;
  /** Where the agent runner package lives on the host (bound read-only into every sandbox). */
  readonly agentRunnerDir: string;
  /** Where the bundle of Warren's own agent loop lives on the host (`@warren/agent-llm`'s dist), bound at /opt/warren/agent-llm. */
  readonly agentLlmDir: string;
  /** `--nats-url` as given: one URL or several separated by commas; undefined for the embedded server. */
  readonly natsUrl: string | undefined;
  /** The URLs of `natsUrl`, each trimmed (empty for the embedded server). */
  readonly natsUrls: readonly string[];
  /** The replicas of each JetStream stream (see {@link SupervisorOptions} `natsReplicas`). */
  readonly natsReplicas: number;
  /** The NATS credentials file for `natsUrl` (absolute), if one was given. */
  readonly natsCredsFile: string | undefined;
  /** The NATS user and password for `natsUrl`, if given as options (the URL may also carry them). */
  readonly natsUser: string | undefined;
  readonly natsPassword: string | undefined;
  /** The instance name on NATS given with `--instance`, or undefined to derive it from the state directory. */
  readonly instance: string | undefined;
  /** Where agents of `placement.target: kubernetes` templates run; undefined when no `--kube-image` was given (no kubernetes target). */
  readonly kubernetes: KubernetesConfig | undefined;
  readonly tickIntervalMs: number;
  readonly killGraceMs: number;
  readonly boardRescanMs: number;
  /** Executions of one task before it is failed for good (agent crashes count). */
  readonly maxAttempts: number;
  /** A waiting task gains one priority level per this many ms (fairness; see the README). */
  readonly agingMs: number;
  /** An agent silent (no heartbeat, no frame) this long is killed and its tasks re-queued, in ms. */
  readonly heartbeatTimeoutMs: number;
  /** The first wait before starting another agent of a template whose last one failed to start, in ms; doubles each time. */
  readonly restartBackoffMs: number;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** The free-space reserve on the state directory's filesystem (see {@link parseDiskReserve}). */
  readonly diskReserve: DiskReserveSpec;
  /** Where the HTTP API and dashboard listen; undefined when off (see {@link parseHttpAddress}). */
  readonly http: HttpAddress | undefined;
  /** The audit checkpoints' signing key (PEM, 0600), absolute. */
  readonly auditKeyPath: string;
  /** A fault-injection point to die at, for crash-recovery tests; never set in production. */
  readonly crashAt: CrashPoint | undefined;
  /**
   * The supervisor's own host as a node: its name, labels, agents at most and memory for agents
   * (bytes); null with `--no-local-node` (agents run only on `warren node` hosts).
   */
  readonly localNode: LocalNodeConfig | null;
}

/** The embedded node's settings; see {@link SupervisorConfig.localNode}. */
export interface LocalNodeConfig {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly maxAgents: number;
  readonly memoryBytes: number;
}

/**
 * Parses node labels given as `key=value` pairs separated by commas (`zone=b,gpu=1`; '' is none).
 * Keys and values follow the template's `placement.labels` rules (Kubernetes label syntax).
 * @throws {ConfigError} naming `where` and the pair at fault (no `=`, a bad key or value, a key twice).
 */
export function parseNodeLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of text.split(',')) {
    const pair = item.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(where, `${JSON.stringify(pair)} is not key=value (such as zone=b)`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (!LABEL_KEY.test(key)) throw new ConfigError(where, `label key ${JSON.stringify(key)} must be letters, digits, . _ - (at most 63), optionally after a DNS prefix and /`);
    if (!LABEL_VALUE.test(value)) throw new ConfigError(where, `label value ${JSON.stringify(value)} of ${key} must be at most 63 letters, digits, . _ -, starting and ending with a letter or digit`);
    if (Object.hasOwn(labels, key)) throw new ConfigError(where, `label ${key} is given twice`);
    labels[key] = value;
  }
  return labels;
}

/** The kubernetes target (`warren up --kube-image … [--kube-namespace …] [--kube-context …] [--kube-runtime-class …]`). */
export interface KubernetesConfig {
  readonly namespace: string;
  readonly image: string;
  /** A kubeconfig context, or undefined for the current one. */
  readonly context: string | undefined;
  readonly runtimeClassName: string | undefined;
}

/** The kubernetes target of `o`, or undefined without an image. @throws {ConfigError} for kube options without `kubeImage`. */
function kubernetesConfig(o: { kubeNamespace?: string; kubeImage?: string; kubeContext?: string; kubeRuntimeClass?: string }): KubernetesConfig | undefined {
  if (o.kubeImage === undefined) {
    const stray = (['kubeNamespace', 'kubeContext', 'kubeRuntimeClass'] as const).find((k) => o[k] !== undefined);
    if (stray !== undefined) {
      const flag = stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      throw new ConfigError(`option '${flag}'`, "needs option 'kube-image' (the image of agent pods), which turns the kubernetes target on");
    }
    return undefined;
  }
  return { namespace: o.kubeNamespace ?? 'warren', image: o.kubeImage, context: o.kubeContext, runtimeClassName: o.kubeRuntimeClass };
}

/** A TCP listening address: a host name or IP literal (without brackets) and a port, 0 for any free one. */
export interface HttpAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `--http` as `parseListenAddress` of `@warren/http` does: `off`, `host:port`,
 * `[ipv6]:port` or a bare `:port` (host 127.0.0.1).
 * @returns undefined for `off`.
 * @throws {ConfigError} naming `where` when the text is none of these or the port is not 0..65535.
 */
export function parseHttpAddress(text: string, where: string): HttpAddress | undefined {
  try {
    return parseListenAddress(text.trim()) || undefined;
  } catch (error) {
    throw new ConfigError(where, (error as Error).message);
  }
}

/**
 * Splits `--nats-url` at commas into trimmed URLs (`nats://host:port`, maybe with `user:password@`).
 * @throws {ConfigError} naming `where` and the item when one is empty or not a URL.
 */
export function parseNatsUrls(text: string, where: string): string[] {
  return text.split(',').map((item, i, all) => {
    const url = item.trim();
    const which = all.length > 1 ? `URL ${i + 1} of ${all.length} ` : '';
    if (url === '') throw new ConfigError(where, `${which}is empty (give URLs separated by commas, such as nats://10.0.0.1:4222,nats://10.0.0.2:4222)`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(where, `${which}${JSON.stringify(url)} is not a URL (such as nats://127.0.0.1:4222)`);
    }
    if (parsed.host === '') throw new ConfigError(where, `${which}${JSON.stringify(url)} names no host`);
    return url;
  });
}

/**
 * The stream replicas: `given`, else 1 for one URL and 3 (at most the URL count) for several.
 * @throws {ConfigError} when more than one replica is asked of the embedded server (a single server).
 */
function natsReplicas(given: number | undefined, urls: readonly string[]): number {
  if (urls.length === 0) {
    if (given !== undefined && given > 1) throw new ConfigError("option 'nats-replicas'", `${given} replicas need a NATS cluster: give its servers with --nats-url`);
    return 1;
  }
  return given ?? (urls.length > 1 ? Math.min(3, urls.length) : 1);
}

/**
 * Validates options and resolves paths against `root` (itself resolved against the cwd).
 * @throws {ConfigError} naming the option at fault.
 */
export function resolveConfig(options: SupervisorOptions, agentRunnerDir: string, agentLlmDir: string = resolve(agentRunnerDir, '..', 'agent-llm', 'dist')): SupervisorConfig {
  const parsed = SupervisorOptions.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
    throw new ConfigError(`option '${key}'`, issue.message);
  }
  const o = parsed.data;
  const root = resolve(o.root);
  const natsUrls = o.natsUrl === undefined ? [] : parseNatsUrls(o.natsUrl, "option 'nats-url'");
  const config: SupervisorConfig = {
    root,
    boardDir: resolve(root, o.board ?? 'kanban'),
    boardFormat: o.format,
    boardMappingPath: o.mapping === undefined ? undefined : resolve(o.mapping),
    agentsDir: resolve(root, o.agents ?? 'agents'),
    homeRoot: resolve(root, o.home ?? 'home'),
    skeletonDir: resolve(root, o.skeleton ?? 'home/skel'),
    uidMin: Number(o.uidRange.split('-')[0]),
    uidMax: Number(o.uidRange.split('-')[1]),
    policiesDir: resolve(root, o.policies ?? 'policies'),
    providersDir: resolve(root, o.providers ?? 'providers'),
    agentClisDir: resolve(root, o.agentClis ?? 'tools/agent-clis'),
    stateDir: resolve(root, o.stateDir ?? 'var'),
    agentRunnerDir,
    agentLlmDir,
    natsUrl: o.natsUrl,
    natsUrls,
    natsReplicas: natsReplicas(o.natsReplicas, natsUrls),
    natsCredsFile: o.natsCreds === undefined ? undefined : resolve(o.natsCreds),
    natsUser: o.natsUser,
    natsPassword: o.natsPassword,
    instance: o.instance,
    kubernetes: kubernetesConfig(o),
    tickIntervalMs: parseDurationMs(o.tickInterval, "option 'tick-interval'"),
    killGraceMs: parseDurationMs(o.killGrace, "option 'kill-grace'"),
    boardRescanMs: parseDurationMs(o.boardRescan, "option 'board-rescan'"),
    maxAttempts: o.maxAttempts,
    agingMs: Math.max(1, parseDurationMs(o.aging, "option 'aging'")),
    heartbeatTimeoutMs: parseDurationMs(o.heartbeatTimeout, "option 'heartbeat-timeout'"),
    restartBackoffMs: parseDurationMs(o.restartBackoff, "option 'restart-backoff'"),
    logLevel: o.logLevel,
    diskReserve: parseDiskReserve(o.diskReserve, "option 'disk-reserve'"),
    http: parseHttpAddress(o.http, "option 'http'"),
    auditKeyPath: o.auditKey === undefined ? resolve(root, o.stateDir ?? 'var', 'audit-signing.key') : resolve(o.auditKey),
    crashAt: o.crashAt,
    localNode: o.localNode
      ? {
          name: o.nodeName,
          labels: parseNodeLabels(o.nodeLabels, "option 'node-labels'"),
          maxAgents: o.nodeMaxAgents ?? Number.MAX_SAFE_INTEGER,
          memoryBytes: o.nodeMemory === undefined ? totalmem() : parseBytes(o.nodeMemory, "option 'node-memory'"),
        }
      : null,
  };
  return Object.freeze(config);
}
