/**
 * @warren/kube: an agent as Kubernetes objects. Pure manifest builders from one `AgentPodSpec`
 * (Pod, PersistentVolumeClaim for the home, Secret for the broker credentials, NetworkPolicy,
 * ServiceAccount), a schema check with a strict unknown-field check, the Pod Security Standards
 * "restricted" checker, and `KubernetesRuntime`, the pod driver behind `AgentRuntime` (the one part
 * that talks to a cluster, through `@kubernetes/client-node` 1.4).
 *
 * ```ts
 * import { agentManifests, assertValidManifest, checkRestricted } from '@warren/kube';
 * const objects = agentManifests({
 *   agent: 'coder-1', template: 'coder', namespace: 'warren', uid: 10001, gid: 10001,
 *   image: 'ghcr.io/warren/agent-runner:0.1.0', command: ['warren-agent-runner'],
 *   brokerEndpoints: [{ cidr: '10.0.0.7', port: 4222 }],
 *   nats: { servers: ['nats://10.0.0.7:4222'], nkeySeed: 'SU…', inboxPrefix: '_INBOX.coder-1' },
 * });
 * for (const manifest of Object.values(objects)) assertValidManifest(manifest);
 * checkRestricted(objects.pod); // []
 * ```
 *
 * This file is the package's whole public surface.
 */
export { AgentPodSpecError, ManifestError } from './errors.js';
export { AGENT_POD_DEFAULTS, resolveAgentPodSpec } from './spec.js';
export type { AgentNatsCredentials, AgentPodSpec, NetworkEndpoint, ResolvedAgentPodSpec } from './spec.js';
export {
  AGENT_APP_NAME,
  AGENT_CONTAINER_NAME,
  AGENT_LABELS,
  NATS_CREDENTIALS_KEY,
  AGENT_CONFIG_KEY,
  NATS_CREDENTIALS_MODE,
  PIDS_MAX_ANNOTATION,
  agentManifests,
  bytesQuantity,
  cpuQuantity,
  natsCredentialsJson,
  networkPolicyManifest,
  podManifest,
  pvcManifest,
  secretManifest,
  serviceAccountManifest,
} from './manifests.js';
export type { AgentManifests } from './manifests.js';
export { agentResourceNames, dns1123Label, isDns1123Label, isDns1123Subdomain, isLabelKey, isLabelValue } from './names.js';
export type { AgentResourceNames } from './names.js';
export { ManifestRule, VALIDATED_KINDS, assertValidManifest, validateManifest } from './validate.js';
export type { ManifestIssue } from './validate.js';
export { PodSecurityRule, checkRestricted } from './restricted.js';
export type { PodSecurityLevel, PodSecurityViolation } from './restricted.js';
export { formatFieldPath } from './field-path.js';
export type { FieldPathSegment } from './field-path.js';
export { KubernetesRuntime } from './runtime.js';
export type { KubernetesRuntimeOptions, PodStartSpec } from './runtime.js';
export { apiStatus, parseQuantity } from './api-status.js';
export type { KubernetesAgentInstance } from './instance.js';
export { podOutcome } from './pod-exit.js';
export type { PodOutcome } from './pod-exit.js';
export { PodWatch } from './pod-watch.js';
export type { PodWatchHandlers, PodWatchOptions } from './pod-watch.js';
export { POD_AGENT_BUNDLE_NAME, POD_AGENT_IN_IMAGE, podAgentBundlePath } from './bundle-path.js';
export { readPodAgentConfig } from './pod-agent/config.js';
export type { PodAgentConfig, PodNatsConfig } from './pod-agent/config.js';
