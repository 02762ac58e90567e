/**
 * The mapper of codex's stream (`codex exec --json`, checked against 0.171.0): one JSON object per
 * line, `type` one of `thread.started` {thread_id} (also on a resumed thread), `turn.started`,
 * `item.started` / `item.updated` / `item.completed` {item}, `turn.completed` {usage},
 * `turn.failed` {error: {message}} and `error` {message}. Items have `id` and `type`:
 * `agent_message` {text}, `reasoning` {text}, `command_execution` {command, aggregated_output,
 * exit_code, status}, `file_change` {changes: [{path, kind}], status}, `mcp_tool_call` {server,
 * tool, arguments, result, error, status}, `web_search` {query}, `todo_list` {items} and `error`
 * {message} (a warning: the run goes on). The final answer is the last `agent_message` of the
 * turn. The usage of `turn.completed` counts the whole thread, earlier runs of a resumed one included.
 */
import type { AgentEvent, LineMapper } from '../agent-events.js';
import { count, isRecord, raw, record, str } from './shared.js';

const SOURCE = 'codex';

function toolCallOf(item: Record<string, unknown>): AgentEvent | null {
  const id = str(item.id) ?? '';
  switch (item.type) {
    case 'command_execution':
      return { kind: 'tool_call', id, name: 'shell', input: { command: item.command ?? null } };
    case 'file_change':
      return { kind: 'tool_call', id, name: 'file_change', input: { changes: item.changes ?? [] } };
    case 'mcp_tool_call':
      return { kind: 'tool_call', id, name: `${str(item.server) ?? 'mcp'}.${str(item.tool) ?? ''}`, input: item.arguments ?? null };
    case 'web_search':
      return { kind: 'tool_call', id, name: 'web_search', input: { query: item.query ?? null } };
    default:
      return null;
  }
}

function toolResultOf(item: Record<string, unknown>): AgentEvent | null {
  const id = str(item.id) ?? '';
  const failed = item.status === 'failed' || item.status === 'declined';
  switch (item.type) {
    case 'command_execution': {
      const exit = item.exit_code;
      return { kind: 'tool_result', id, output: str(item.aggregated_output) ?? '', isError: failed || (typeof exit === 'number' && exit !== 0) };
    }
    case 'file_change': {
      const changes = Array.isArray(item.changes) ? item.changes.map((c) => `${String(record(c).kind)} ${String(record(c).path)}`) : [];
      return { kind: 'tool_result', id, output: changes.join('\n'), isError: failed };
    }
    case 'mcp_tool_call': {
      const error = record(item.error);
      const output = str(error.message) ?? (item.result === undefined || item.result === null ? '' : JSON.stringify(item.result));
      return { kind: 'tool_result', id, output, isError: failed || typeof error.message === 'string' };
    }
    case 'web_search':
      return { kind: 'tool_result', id, output: '', isError: failed };
    default:
      return null;
  }
}

/** A new mapper for one codex run. */
export function mapCodexLine(): LineMapper {
  const started = new Set<string>();
  let lastMessage = '';
  return (value: unknown): AgentEvent[] => {
    if (!isRecord(value)) return [raw(SOURCE, value)];
    switch (value.type) {
      case 'thread.started': {
        const sessionId = str(value.thread_id);
        return sessionId ? [{ kind: 'session', sessionId }] : [raw(SOURCE, value)];
      }
      case 'turn.started':
      case 'item.updated':
        return [];
      case 'item.started': {
        const item = record(value.item);
        const call = toolCallOf(item);
        if (!call) return [];
        started.add(str(item.id) ?? '');
        return [call];
      }
      case 'item.completed': {
        const item = record(value.item);
        if (item.type === 'agent_message') {
          lastMessage = str(item.text) ?? '';
          return [{ kind: 'text', text: lastMessage }];
        }
        if (item.type === 'reasoning' || item.type === 'todo_list') return [];
        if (item.type === 'error') return [{ kind: 'error', message: str(item.message) ?? 'codex reported an error' }];
        const result = toolResultOf(item);
        if (!result) return [raw(SOURCE, value)];
        const call = started.has(str(item.id) ?? '') ? null : toolCallOf(item);
        return call ? [call, result] : [result];
      }
      case 'turn.completed': {
        const usage = record(value.usage);
        return [
          { kind: 'usage', inputTokens: count(usage.input_tokens), outputTokens: count(usage.output_tokens) },
          { kind: 'final', text: lastMessage, isError: false },
        ];
      }
      case 'turn.failed': {
        const message = str(record(value.error).message) ?? 'the turn failed';
        return [
          { kind: 'error', message },
          { kind: 'final', text: message, isError: true },
        ];
      }
      case 'error':
        return [{ kind: 'error', message: str(value.message) ?? 'codex reported an error' }];
      default:
        return [raw(SOURCE, value)];
    }
  };
}
