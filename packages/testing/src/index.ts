/**
 * @warren/testing: helpers for Warren's own tests — a real nats-server in a temp store, a NATS
 * cluster of several (`startNatsCluster`: kill and restart servers, find a stream's leader),
 * temporary directories that clean up after themselves, an OTLP/HTTP trace receiver, and a fake
 * LLM provider that speaks OpenAI Chat Completions, OpenAI Responses and Anthropic Messages
 * (streamed and not) from scripted turns; and a fake Kubernetes API server that
 * `@kubernetes/client-node` talks to, with watches, Pod Security admission and pod lifecycle helpers.
 *
 * ```ts
 * import { startTestNats, makeTempDir, startOtlpReceiver, startFakeLlm, startFakeKubeApi } from '@warren/testing';
 * import { connectBroker } from '@warren/broker';
 *
 * await using nats = await startTestNats();
 * await using dir = await makeTempDir('warren-store-');
 * await using broker = await connectBroker({ servers: nats.url, name: 'test' });
 * await broker.ensureStreams();
 *
 * await using otlp = await startOtlpReceiver(); // OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url
 * await otlp.waitFor((spans) => spans.length >= 3, { what: 'three spans' });
 *
 * await using llm = await startFakeLlm({
 *   script: [{ toolCalls: [{ name: 'shell', arguments: { cmd: 'ls' } }] }, { text: 'Done.', usage: { inputTokens: 20, outputTokens: 2 } }],
 * });
 * // OpenAI clients: baseURL `${llm.url}/v1`; Anthropic clients: baseURL llm.url.
 * llm.requests[0]?.headers.authorization; // which key arrived
 *
 * await using kube = await startFakeKubeApi(); // a Kubernetes API server for @kubernetes/client-node
 * const kc = new KubeConfig();
 * kc.loadFromOptions(kube.kubeconfig());
 * kube.runPod('default', 'agent-a'); // the kubelet's part: Running, then finishPod / oomKillPod / evictPod
 * ```
 */
export { startTestNats } from './nats.js';
export type { StartTestNatsOptions } from './nats.js';
export { startNatsCluster } from './nats-cluster.js';
export type { NatsCluster, NatsClusterServer, StartNatsClusterOptions, WaitForHealthyOptions } from './nats-cluster.js';
export { makeTempDir } from './temp.js';
export type { TempDir } from './temp.js';
export { startOtlpReceiver } from './otlp.js';
export type { OtlpReceiver, ReceivedSpan, OtlpValue, StartOtlpReceiverOptions } from './otlp.js';
export { startFakeLlm } from './llm/server.js';
export { FakeLlmWire } from './llm/types.js';
export type {
  FakeLlm,
  FakeLlmRequest,
  FakeLlmScript,
  FakeTurn,
  FakeReply,
  FakeToolCall,
  FakeUsage,
  FakeStatusFault,
  FakeHangFault,
  FakeCutFault,
  StartFakeLlmOptions,
} from './llm/types.js';
export { startFakeKubeApi } from './kube/server.js';
export { checkPodSecurity, podSecurityMessage, PodSecurityLevel } from './kube/pod-security.js';
export type { PodSecurityViolation } from './kube/pod-security.js';
export type { KubeStatus, KubeStatusCause } from './kube/status.js';
export type {
  FakeKubeApi,
  FakeKubeConfig,
  FakeKubeRequest,
  FakeKubeResource,
  FakeContainerState,
  FakeExecHandler,
  FakeExecRequest,
  FakeContainerStatus,
  FakePodExit,
  FakePodHook,
  FakePodStatusUpdate,
  KubeObject,
  KubeObjectMeta,
  StartFakeKubeApiOptions,
} from './kube/types.js';
export { startSandboxKubelet } from './kube/sandbox-kubelet.js';
export type { SandboxKubelet, SandboxKubeletOptions } from './kube/sandbox-kubelet.js';
