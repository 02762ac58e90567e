/**
 * @warren/agent-runner: the program that runs inside each agent's sandbox, and the agent channel
 * protocol it shares with the supervisor's gateway (NDJSON frames over a Unix socket).
 *
 * It imports only Node built-ins, so its `dist/` runs as plain JavaScript in the sandbox:
 * `node /opt/warren/agent-runner/dist/runner.cjs` (the whole runner bundled into one file by
 * `npm run build`; `dist/main.js` works too). As a library:
 *
 * ```ts
 * import { runAgent, runnerConfigFromEnv, encodeFrame, decodeAgentFrame } from '@warren/agent-runner';
 * const config = runnerConfigFromEnv(process.env); // WARREN_AGENT_SOCKET, WARREN_RUNTIME, …
 * const exitCode = await runAgent({ ...config, env: process.env }); // 0 after shutdown, 1 if the channel is lost
 *
 * // gateway side: one frame per line
 * socket.write(encodeFrame({ type: 'shutdown', reason: 'idle' }));
 * const frame = decodeAgentFrame(line); // throws FrameError naming the field at fault
 *
 * // agent runtimes (claude-code, codex, opencode, llm): progress frames carry an AgentEvent
 * if (frame.type === 'progress' && frame.event?.kind === 'usage') record(frame.event.inputTokens);
 * const health = await probeAgentCli('codex', '/srv/warren/tools/agent-clis/node_modules/' + agentCliBinary('codex'));
 * ```
 */
export { RUNNER_BUNDLE_NAME } from './bundle.js';
export {
  AGENT_SOCKET_PATH,
  AGENT_SDK_BIN_IN_SANDBOX,
  BUS_SOCKET_PATH,
  LLM_SOCKET_PATH,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  TaskOutcome,
  FrameError,
  encodeFrame,
  decodeAgentFrame,
  decodeGatewayFrame,
  LineSplitter,
} from './protocol.js';
export type { TaskFrame, GatewayFrame, ResultFrame, AgentFrame, RunSpanFrame } from './protocol.js';
export { parseParentContext, newSpanId, formatTraceparent } from './trace-context.js';
export type { ParentContext } from './trace-context.js';
export { runAgent, ACK_HOLD_MS } from './runner.js';
export type { RunAgentOptions } from './runner.js';
export { startExecution, busEnvironment, isSafeTaskId, MAX_OUTPUTS, MAX_SUMMARY_CHARS } from './execution.js';
export type { Execution, ExecutionOptions, Runtime, SpawnTaskProcess, TaskProcess, TaskProcessRequest } from './execution.js';
export { parseProgressLine, parseSendLine, OutputCapture } from './output.js';
export type { ProgressLine, SendLine } from './output.js';
export { runnerConfigFromEnv, parseRuntime, RunnerConfigError } from './config.js';
export type { RunnerConfig } from './config.js';
export { createLineMapper, mapAgentLine, asAgentEvent, agentEventProblem, truncateAgentEvent, describeAgentEvent, AGENT_KINDS } from './agent-events.js';
export type { AgentEvent, AgentKind, LineMapper } from './agent-events.js';
export {
  agentInvocation,
  taskPrompt,
  isAgentKind,
  loadSession,
  saveSession,
  sessionsFile,
  probeAgentCli,
  agentCliBinary,
  AGENT_CLIS_MODULES_DIR,
  PLACEHOLDER_API_KEY,
  LLM_PORT_IN_SANDBOX,
} from './agent-cli.js';
export type { AgentRuntime, CliRuntime, LlmRuntime, AgentInvocation, InvocationOptions, StoredSession, ProbeResult } from './agent-cli.js';
export { startLlmForwarder } from './llm-forward.js';
export type { LlmForwarder, LlmForwarderOptions } from './llm-forward.js';
export { prepareGitWorkspace, summarizeGitWorkspace, formatGitWorkspaceSummary, gitIdentityEnv, mirrorInSandbox, GitWorkspaceError, MIRRORS_IN_SANDBOX } from './workspace.js';
export type { PrepareGitWorkspaceOptions, GitWorkspace, SummarizeGitWorkspaceOptions, GitWorkspaceSummary } from './workspace.js';
