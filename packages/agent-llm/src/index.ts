/**
 * @warren/agent-llm: Warren's own agent loop, the program behind `runtime.kind: llm`. It runs inside
 * the agent's sandbox as one bundled file (`dist/agent-llm.mjs`, Node's built-ins only), talks
 * OpenAI Chat Completions to `OPENAI_BASE_URL` (the gateway, through the runner's forwarder on
 * 127.0.0.1:4141), gives the model the agent's computer (shell and files in its home) and the
 * Warren MCP tools its policy allows, keeps the conversation in the home between tasks, and prints
 * one `AgentEvent` (the format `@warren/agent-runner` defines and validates) per stdout line.
 *
 * This module is what the host side uses: where the bundle is and how to start it, the environment
 * contract.
 *
 * ```ts
 * import { agentLlmDistDir, AGENT_LLM_DIR_IN_SANDBOX, AGENT_LLM_COMMAND } from '@warren/agent-llm';
 * import { agentEventProblem } from '@warren/agent-runner';   // the one AgentEvent format
 * // bwrap: --ro-bind <agentLlmDistDir()> /opt/warren/agent-llm
 * // runner: spawn(AGENT_LLM_COMMAND[0], AGENT_LLM_COMMAND.slice(1), { cwd: workspace, env: {
 * //   WARREN_TASK_FILE, OPENAI_BASE_URL: 'http://127.0.0.1:4141/p/openai', OPENAI_API_KEY: 'warren-gateway',
 * //   WARREN_LLM_MODEL, WARREN_LLM_MAX_TURNS, WARREN_MCP_URL: 'http://127.0.0.1:4141/mcp', HOME } })
 * const problem = agentEventProblem(JSON.parse(line)); // null for a valid event
 * ```
 */
export { AGENT_LLM_BUNDLE_NAME, AGENT_LLM_COMMAND, AGENT_LLM_DIR_IN_SANDBOX, AGENT_LLM_ENV, agentLlmBundlePath, agentLlmDistDir } from './paths.js';
export { DEFAULT_MAX_TURNS, PLACEHOLDER_API_KEY, loadConfig, readTaskFile } from './config.js';
export type { AgentLlmConfig, LoopTask } from './config.js';
export { HISTORY_MAX_BYTES, HISTORY_MAX_MESSAGES, HISTORY_PATH, loadHistory, saveHistory, trimHistory } from './history.js';
export type { History, HistoryLimits, LoadedHistory } from './history.js';
export { PathOutsideHomeError, ToolError, ModelCallError } from './errors.js';
