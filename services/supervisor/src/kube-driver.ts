/**
 * The supervisor's driver for templates with `placement.target: kubernetes`: a `KubernetesRuntime`
 * (`@warren/kube`) configured by `warren up --kube-image/--kube-namespace/--kube-context/
 * --kube-runtime-class` (config `kubernetes`), the kubeconfig from `KUBECONFIG`, `~/.kube/config`
 * or the in-cluster service account. Each agent's pod runs `warren-pod-agent`
 * (`node /opt/warren/warren-pod-agent.mjs` in the image): its gateway reaches the broker with the
 * agent's own NATS user and signing key, and its channel comes back through the supervisor's
 * `ChannelHub`. The placement router calls {@link createKubernetesDriver} at the first use.
 */
import { isIP } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { readOrCreateSecret } from '@warren/broker';
import { ConfigError, WarrenError } from '@warren/core';
import { KubernetesRuntime, POD_AGENT_IN_IMAGE, type AgentNatsCredentials, type NetworkEndpoint, type PodStartSpec } from '@warren/kube';
import { ChannelHub } from '@warren/node';
import type { AgentRuntime } from '@warren/runtime';
import { brokerSecretPaths } from './broker-access.js';
import type { KubernetesConfig } from './config.js';
import type { SupervisorContext } from './context.js';

/** Options of {@link createKubernetesDriver}. */
export interface KubernetesDriverOptions {
  /** The supervisor's one channel hub; default a hub of the driver's own over `ctx.broker`. */
  readonly hub?: ChannelHub;
  /** The cluster; default from {@link KubernetesConfig.context} as described above. */
  readonly kubeConfig?: KubeConfig;
}

/** The kubeconfig of `config`: the default loading rules, then `context` when given. @throws {ConfigError} for a context the kubeconfig does not have. */
export function kubeConfigOf(config: KubernetesConfig): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  if (config.context !== undefined) {
    if (kc.getContextObject(config.context) === null) {
      throw new ConfigError("option 'kube-context'", `the kubeconfig has no context ${JSON.stringify(config.context)} (it has ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    }
    kc.setCurrentContext(config.context);
  }
  return kc;
}

/**
 * The broker credentials of a pod from the `~/.warren/nats.json` the supervisor issued for the
 * agent (among the shipped spec's `homeFiles`).
 * @throws {WarrenError} `WARREN_KUBE_CREDENTIALS` when there is none: pods need per-agent NATS users, which the supervisor issues only with its own nats-server.
 */
export function podNatsCredentials(spec: PodStartSpec): AgentNatsCredentials {
  const file = spec.homeFiles?.find((f) => f.path === '.warren/nats.json');
  if (file === undefined) {
    throw new WarrenError('WARREN_KUBE_CREDENTIALS', `agent ${spec.name}: no ~/.warren/nats.json was issued for its pod (per-agent NATS users need the supervisor's own nats-server, not --nats-url)`);
  }
  const parsed = JSON.parse(Buffer.from(file.contentBase64, 'base64').toString('utf8')) as { servers?: unknown; nkeySeed?: unknown; inboxPrefix?: unknown };
  if (!Array.isArray(parsed.servers) || typeof parsed.nkeySeed !== 'string' || typeof parsed.inboxPrefix !== 'string') {
    throw new WarrenError('WARREN_KUBE_CREDENTIALS', `agent ${spec.name}: its ~/.warren/nats.json lacks servers, nkeySeed or inboxPrefix`);
  }
  return { servers: parsed.servers.map(String), nkeySeed: parsed.nkeySeed, inboxPrefix: parsed.inboxPrefix };
}

/** The NetworkPolicy egress of the broker: each server URL's address and port (an IP; a host name cannot be a CIDR and is skipped). */
export function brokerEndpointsOf(urls: readonly string[]): NetworkEndpoint[] {
  const endpoints: NetworkEndpoint[] = [];
  for (const text of urls) {
    const url = new URL(text);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) === 0) continue;
    endpoints.push({ cidr: host, port: Number(url.port || 4222) });
  }
  return endpoints;
}

/**
 * Makes the kubernetes target's runtime from `ctx.config.kubernetes`.
 * @throws {ConfigError} when the supervisor has no kubernetes target, or its context is unknown.
 */
export async function createKubernetesDriver(ctx: SupervisorContext, options: KubernetesDriverOptions = {}): Promise<AgentRuntime> {
  const config = ctx.config.kubernetes;
  if (config === undefined) throw new ConfigError("option 'kube-image'", 'is not set: this supervisor has no kubernetes target');
  const kubeConfig = options.kubeConfig ?? kubeConfigOf(config);
  const signingKey = Buffer.from(await readOrCreateSecret(brokerSecretPaths(ctx.config.stateDir).signingKey), 'utf8');
  const hub = options.hub ?? new ChannelHub({ nc: ctx.broker.nc, ns: ctx.broker.namespace, logger: ctx.log.child({ component: 'kube-channels' }) });
  const servers = ctx.nats !== undefined ? [ctx.nats.url] : ctx.config.natsUrls;
  const runtime = new KubernetesRuntime({
    kubeConfig,
    namespace: config.namespace,
    image: config.image,
    command: ['/usr/bin/node', POD_AGENT_IN_IMAGE],
    ...(config.runtimeClassName === undefined ? {} : { runtimeClassName: config.runtimeClassName }),
    credentials: (spec) => podNatsCredentials(spec),
    brokerEndpoints: brokerEndpointsOf(servers),
    channels: hub,
    broker: ctx.broker,
    signingKey,
    onError: (error, context) => ctx.log.warn({ err: error, context }, 'kubernetes driver'),
  });
  if (options.hub === undefined) {
    // The hub made here goes with the runtime.
    const close = runtime.close.bind(runtime);
    runtime.close = async () => {
      await close();
      hub.close();
    };
  }
  return runtime;
}
