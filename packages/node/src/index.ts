/**
 * @warren/node: agents on other hosts. The remote agent channel (an agent's gateway runs on a node
 * or in a pod, its events and requests travel over NATS to the supervisor's `ChannelHub`), the
 * wire protocol of nodes (subjects and zod schemas of every payload), and the node daemon with its
 * supervisor-side runtime and registry. This file is the package's whole public surface.
 *
 * ```ts
 * import { ChannelHub, relayChannel } from '@warren/node';
 * // supervisor
 * const hub = new ChannelHub({ nc: broker.nc, ns: broker.namespace, logger });
 * const channel = hub.attach('shell-1', instance, events);   // before the instance starts
 * // gateway host (node or pod)
 * const relay = relayChannel({ nc, ns, agent: 'shell-1', instance, logger,
 *   control: { cancel: (t, a, r) => gateway.cancel(t, a, r), resend: (t, a) => gateway.resendResult(t, a),
 *              shutdown: (why) => gateway.requestShutdown(why) } });
 * await AgentGateway.start({ ..., events: relay });
 * relay.exited(exit); await relay.close();
 * ```
 */
export {
  INSTANCE_PATTERN,
  EXEC_ID_PATTERN,
  NODE_NAME_PATTERN,
  agentExitSchema,
  agentSpecSchema,
  agentUsageSchema,
  authorizeReplySchema,
  channelControlSchema,
  channelEventSchema,
  channelRequestSchema,
  channelSubjects,
  decodePayload,
  encodePayload,
  errorReplySchema,
  execOutputSchema,
  homeFileSchema,
  nodeCapacitySchema,
  nodeCommandSchema,
  nodeHeartbeatSchema,
  nodeInstanceSchema,
  nodeReplySchemas,
  nodeStartSpecSchema,
  nodeSubjects,
  runtimeHostSchema,
  sendReplySchema,
  subjectToken,
} from './protocol.js';
export type {
  AgentSpecJson,
  AuthorizeReply,
  ChannelControl,
  ChannelEvent,
  ChannelRequest,
  ChannelSubjects,
  Decoded,
  ErrorReply,
  ExecOutput,
  HomeFile,
  NodeCapacity,
  NodeCommand,
  NodeHeartbeat,
  NodeInstanceReport,
  NodeReply,
  NodeStartSpec,
  NodeSubjects,
  SendReply,
} from './protocol.js';
export { ChannelHub, DEFAULT_CHANNEL_REQUEST_TIMEOUT_MS, relayChannel } from './channel.js';
export type { ChannelControlHandlers, ChannelHubOptions, RelayChannelOptions, RelayedChannel, RemoteChannel } from './channel.js';
export { DEFAULT_HEARTBEAT_MS, NODE_PROTOCOL_VERSION, NodeDaemon } from './daemon.js';
export type { NodeDaemonOptions } from './daemon.js';
export { DEFAULT_NODE_REQUEST_TIMEOUT_MS, RemoteNodeRuntime } from './remote-runtime.js';
export type { RemoteNodeRuntimeOptions, RemoteStartSpec } from './remote-runtime.js';
export { NodeRegistry } from './registry.js';
export type { NodeRegistryOptions, NodeView } from './registry.js';
export { ensureHome, writeHomeFiles } from './home-files.js';
export { nodeJoinSchema, readNodeJoin, writeNodeJoin } from './join.js';
export type { NodeJoin } from './join.js';
