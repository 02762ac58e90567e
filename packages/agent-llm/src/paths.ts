/**
 * Where the program is, on the host and in the sandbox, and how the runner starts it. Imports only
 * Node's built-ins, so that the supervisor can read these without loading the loop.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundle's file name. */
export const AGENT_LLM_BUNDLE_NAME = 'agent-llm.mjs';

/** Where the supervisor binds {@link agentLlmDistDir} (read-only) inside the sandbox. */
export const AGENT_LLM_DIR_IN_SANDBOX = '/opt/warren/agent-llm';

/** The command the runner runs for `runtime.kind: llm`, inside the sandbox. */
export const AGENT_LLM_COMMAND: readonly string[] = ['/usr/bin/node', `${AGENT_LLM_DIR_IN_SANDBOX}/${AGENT_LLM_BUNDLE_NAME}`];

/**
 * The package's `dist` directory on the host (absolute), which holds the bundle: the directory the
 * supervisor binds at {@link AGENT_LLM_DIR_IN_SANDBOX}.
 */
export function agentLlmDistDir(): string {
  // This file is `src/paths.ts` or `dist/lib/paths.js`.
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..') : resolve(here, '..', 'dist');
}

/** The bundle on the host: `packages/agent-llm/dist/agent-llm.mjs`, made by `npm run build`. */
export function agentLlmBundlePath(): string {
  return join(agentLlmDistDir(), AGENT_LLM_BUNDLE_NAME);
}

/**
 * The environment variables the runner sets for the program (the contract; see the README):
 * the task file, the Chat Completions base URL and placeholder key, the model, the turn limit,
 * Warren's MCP URL, and the bus socket (the messaging tools are offered when it is there).
 */
export const AGENT_LLM_ENV = {
  taskFile: 'WARREN_TASK_FILE',
  baseUrl: 'OPENAI_BASE_URL',
  apiKey: 'OPENAI_API_KEY',
  model: 'WARREN_LLM_MODEL',
  maxTurns: 'WARREN_LLM_MAX_TURNS',
  mcpUrl: 'WARREN_MCP_URL',
  busSocket: 'WARREN_BUS_SOCKET',
} as const;
