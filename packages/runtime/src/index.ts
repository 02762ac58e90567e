/**
 * @warren/runtime: the seam between Warren's supervisor and wherever agents run. `AgentRuntime` is
 * the driver interface (probe the host, reclaim what a crash left, start an instance, exec as an
 * agent, detach and release its storage); `createBubblewrapRuntime` is the driver that runs each
 * instance in a bubblewrap sandbox on this host, with its agent channel (`AgentGateway`). This
 * file is the package's whole public surface.
 *
 * ```ts
 * import { createBubblewrapRuntime, describeExit } from '@warren/runtime';
 * const runtime = createBubblewrapRuntime({ stateDir: '/var/lib/warren', homeRoot: '/var/lib/warren/home',
 *   runnerDir: '/srv/warren/packages/agent-runner', root: '/srv/warren', broker, logger });
 * await runtime.probe();                         // throws, with an install hint, if the host cannot isolate agents
 * const { instances, storage } = await runtime.reclaim();   // what a crashed run left
 * const agent = await runtime.start({
 *   name: 'shell-1', template: 'shell', uid: 1_900_000_001, gid: 1_900_000_001,
 *   homeDir: '/var/lib/warren/home/shell/shell-1', capabilities: ['shell'],
 *   resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 256, cpuWeight: 100, nofile: 1024,
 *                fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 64 * 2 ** 20 },
 *   runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 2500 },
 *   homeQuotaBytes: null,
 * }, events);                                    // events.hello(name, pid) once its runner is ready
 * agent.usage();                                 // { memoryBytes, pids, cpuMs, pidsRefused, oomKills }
 * agent.requestShutdown('sleep');
 * console.log(describeExit(await agent.stop(5000)));
 * await agent.close();
 * ```
 */
export { createBubblewrapRuntime, removeExecLeftovers } from './bubblewrap.js';
export type { BubblewrapRuntimeOptions } from './bubblewrap.js';
export type {
  AgentEvents,
  AgentExecOptions,
  AgentExit,
  AgentInstance,
  AgentIsolation,
  AgentMount,
  AgentProcess,
  AgentResources,
  AgentRunnerSettings,
  AgentRuntime,
  AgentSpec,
  AgentStartSpec,
  AgentStopReason,
  AgentStorageRef,
  AgentUsage,
  ChannelService,
  ReclaimReport,
  RuntimeHost,
} from './runtime.js';
export { describeExit, describeOutOfMemory, describeProcessLimit } from './exit.js';
export { AgentGateway } from './gateway.js';
export type { AgentGatewayOptions, GatewayEvents, GatewayIdentity } from './gateway.js';
export {
  agentSandboxSpec,
  homeInSandbox,
  instanceTag,
  AGENT_CLIS_IN_SANDBOX,
  AGENT_PATH,
  AGENTS_BIN_IN_SANDBOX,
  RUNNER_IN_SANDBOX,
} from './sandbox-spec.js';
export type { SandboxHostPaths, SandboxSpecInput } from './sandbox-spec.js';
export { RuntimeError } from './errors.js';
