/**
 * @warren/agent-sdk: an agent's end of Warren's broker, for programs inside the sandbox. It talks
 * HTTP over the agent's bus socket (`/run/warren/bus.sock`, `$WARREN_BUS_SOCKET`), which the
 * supervisor serves for that agent alone: the agent's identity is the socket, and the policy decides
 * every call. Node's built-ins only (it is bundled into the built-in loop and into `warren-bus`).
 *
 * ```ts
 * import { connectBus, BusError } from '@warren/agent-sdk';
 * const bus = connectBus();                       // $WARREN_BUS_SOCKET or /run/warren/bus.sock
 * await bus.send('worker-1', { step: 'lint' });   // → { id }
 * const inbox = await bus.receive({ max: 10, waitMs: 5000 });   // acknowledged unless ack: false
 * const answer = await bus.request('oracle-1', 'ready?', { timeoutMs: 10_000 });
 * const sub = await bus.subscribe('builds');      // for await (const m of sub) …; sub.close()
 * ```
 *
 * From a shell: `warren-bus send <to> <body>` and the other commands of {@link runCli}.
 */
export { BusError, connectBus } from './client.js';
export type { AgentBus, ConnectBusOptions, ReceiveOptions, Subscription } from './client.js';
export { EXIT_OK, EXIT_REFUSED, EXIT_USAGE, USAGE, parseBody, runCli } from './cli.js';
export type { CliIo } from './cli.js';
export { TOPIC_NAME } from './types.js';
export type { PresenceEntry, ReceivedMessage, ReplyMessage, TopicMessage } from './types.js';
export {
  AGENT_SDK_BIN_IN_SANDBOX,
  AGENT_SDK_DIR_IN_SANDBOX,
  BUS_SOCKET_ENV,
  BUS_SOCKET_PATH,
  WARREN_BUS_BUNDLE_NAME,
  agentSdkDistDir,
  warrenBusBundlePath,
} from './paths.js';
