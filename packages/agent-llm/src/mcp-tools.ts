/**
 * Warren's MCP server as tools for the model: the tools it lists for this agent (the policy decides
 * which), named with a `warren_` prefix, called through the MCP client over Streamable HTTP.
 */
import { Client, StreamableHTTPClientTransport, type CallToolResult } from '@modelcontextprotocol/client';
import type { Tool, ToolOutput } from './tools.js';
import { capOutput } from './tools.js';

/** The prefix of the MCP tools' names as the model sees them (`warren_list_tasks`). */
export const MCP_TOOL_PREFIX = 'warren_';

/** The client's name and version in MCP's `initialize`. */
const CLIENT_INFO = { name: 'warren-agent-llm', version: '0.1.0' };

/** An open MCP session with the tools it lists. */
export interface McpTools {
  /** One tool per MCP tool, named `warren_<name>`. */
  readonly tools: readonly Tool[];
  /** Ends the session; idempotent. */
  close(): Promise<void>;
}

/** Options of {@link connectMcpTools}. */
export interface McpToolsOptions {
  /** The time left for the task, in ms: the longest one call may take. */
  readonly remainingMs: () => number;
}

/** The text the model reads for an MCP tool result: its text blocks, else its structured content as JSON. */
function resultText(result: CallToolResult): string {
  const parts: string[] = [];
  for (const block of result.content ?? []) {
    if (block.type === 'text') parts.push(block.text);
    else if (block.type === 'resource_link') parts.push(`[resource ${block.uri}]`);
    else parts.push(`[${block.type} content]`);
  }
  if (parts.length === 0 && result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  return capOutput(parts.join('\n'));
}

/**
 * Connects to the MCP server at `url` (the runner's forwarder adds the agent's bearer token on its
 * way to the supervisor's `/mcp`) and lists its tools, every page.
 * @throws whatever the MCP client throws when the server cannot be reached or refuses the session
 *   (the caller reports it and goes on without MCP tools).
 */
export async function connectMcpTools(url: string, options: McpToolsOptions): Promise<McpTools> {
  const client = new Client(CLIENT_INFO);
  const transport = new StreamableHTTPClientTransport(new URL(url));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= client.close().catch(() => undefined));
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    const mapped = tools
      .filter((tool) => /^[a-zA-Z0-9_-]{1,56}$/.test(tool.name))
      .map(
        (tool): Tool => ({
          name: `${MCP_TOOL_PREFIX}${tool.name}`,
          description: `${tool.description ?? tool.title ?? tool.name} (Warren MCP tool '${tool.name}')`.slice(0, 1024),
          parameters: { ...(tool.inputSchema as Record<string, unknown>), type: 'object' },
          async run(input, signal): Promise<ToolOutput> {
            const args = typeof input === 'object' && input !== null && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
            const timeout = Math.max(1, options.remainingMs());
            const result = await client.callTool({ name: tool.name, arguments: args }, { signal, timeout });
            return { output: resultText(result), isError: result.isError === true };
          },
        }),
      );
    return { tools: mapped, close };
  } catch (error) {
    await close();
    throw error;
  }
}
