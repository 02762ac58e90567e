/**
 * The one event type of an agent's run, whichever program runs it (claude-code, codex, opencode or
 * Warren's own `llm` loop): each CLI's JSON stream is mapped line by line to these events by a
 * mapper of its own (`agents/*.ts`). They travel to the gateway as the optional `event` field of
 * `progress` frames; the `final` event's text is the task's result summary.
 *
 * Node built-ins only: this module runs inside the sandbox.
 */
import { mapClaudeCodeLine } from './agents/claude-code.js';
import { mapCodexLine } from './agents/codex.js';
import { mapLlmLine } from './agents/llm.js';
import { mapOpencodeLine } from './agents/opencode.js';
import { raw } from './agents/shared.js';

/** One event of an agent's run. */
export type AgentEvent =
  | { kind: 'session'; sessionId: string; model?: string }
  | { kind: 'text'; text: string }
  | { kind: 'tool_call'; id: string; name: string; input: unknown }
  | { kind: 'tool_result'; id: string; output: string; isError: boolean }
  | { kind: 'usage'; inputTokens: number; outputTokens: number; costUsd?: number; model?: string }
  | { kind: 'error'; message: string }
  | { kind: 'final'; text: string; isError: boolean }
  | { kind: 'raw'; source: string; line: unknown }; // a line the mapper does not know: kept, never fatal

/** The runtime kinds whose stdout is a JSON event stream. */
export type AgentKind = 'claude-code' | 'codex' | 'opencode' | 'llm';

/** The agent kinds, in a fixed order. */
export const AGENT_KINDS: readonly AgentKind[] = ['claude-code', 'codex', 'opencode', 'llm'];

/**
 * Maps one parsed JSON line of a CLI's stream to events. A mapper may keep state between the lines
 * of one run (a fresh one per run: see {@link createLineMapper}); it returns `[{ kind: 'raw', … }]`
 * for a line it does not know and never throws on any JSON value.
 */
export type LineMapper = (value: unknown) => AgentEvent[];

/** A new mapper for one run of `kind`. */
export function createLineMapper(kind: AgentKind): LineMapper {
  switch (kind) {
    case 'claude-code':
      return mapClaudeCodeLine();
    case 'codex':
      return mapCodexLine();
    case 'opencode':
      return mapOpencodeLine();
    case 'llm':
      return mapLlmLine();
  }
}

/**
 * Parses one stdout line of a run of `kind` and maps it: a line that is not JSON (garbage, or cut
 * short) becomes one `raw` event holding the text; a mapper that fails on a line yields `raw` too.
 * Blank lines yield nothing. Never throws.
 */
export function mapAgentLine(kind: AgentKind, mapper: LineMapper, line: string): AgentEvent[] {
  const text = line.replace(/\r$/, '');
  if (text.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [raw(kind, text)];
  }
  try {
    return mapper(value);
  } catch {
    return [raw(kind, value)];
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Checks that `value` is an {@link AgentEvent}: a known `kind` with each field of the right type
 * (optional fields absent or of their type; `input` and `line` may be any JSON value, token
 * counts and cost finite and >= 0). @returns the value, or null when it is not one (see
 * {@link agentEventProblem} for why).
 */
export function asAgentEvent(value: unknown): AgentEvent | null {
  return agentEventProblem(value) === null ? (value as AgentEvent) : null;
}

/** Why `value` is not an {@link AgentEvent} (e.g. `'usage' event needs 'inputTokens' …`), or null when it is one. */
export function agentEventProblem(value: unknown): string | null {
  if (!isRecord(value)) return 'an event must be a JSON object';
  const need = (key: string, check: (v: unknown) => boolean, what: string, optional = false): string | null => {
    if (optional && value[key] === undefined) return null;
    return check(value[key]) ? null : `'${String(value.kind)}' event needs '${key}' to be ${what}`;
  };
  const first = (...problems: (string | null)[]): string | null => problems.find((p) => p !== null) ?? null;
  switch (value.kind) {
    case 'session':
      return first(need('sessionId', isString, 'a string'), need('model', isString, 'a string', true));
    case 'text':
      return need('text', isString, 'a string');
    case 'tool_call':
      return first(need('id', isString, 'a string'), need('name', isString, 'a string'), 'input' in value ? null : `'tool_call' event needs 'input'`);
    case 'tool_result':
      return first(need('id', isString, 'a string'), need('output', isString, 'a string'), need('isError', (v) => typeof v === 'boolean', 'a boolean'));
    case 'usage':
      return first(
        need('inputTokens', isCount, 'a number >= 0'),
        need('outputTokens', isCount, 'a number >= 0'),
        need('costUsd', isCount, 'a number >= 0', true),
        need('model', isString, 'a string', true),
      );
    case 'error':
      return need('message', isString, 'a string');
    case 'final':
      return first(need('text', isString, 'a string'), need('isError', (v) => typeof v === 'boolean', 'a boolean'));
    case 'raw':
      return first(need('source', isString, 'a string'), 'line' in value ? null : `'raw' event needs 'line'`);
    default:
      return `unknown event kind ${JSON.stringify(value.kind)}`;
  }
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

/** A JSON value whose serialization is at most `max` characters, or `{ truncated: <preview> }`. */
function cutValue(value: unknown, max: number): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined || text.length <= max) return value;
  return { truncated: cut(text, max) };
}

/**
 * `event` with every long string cut to `maxChars` characters (a note says how much was cut) and
 * `input`/`line` values longer than `maxChars` once serialized replaced by
 * `{ truncated: "<the first maxChars characters of their JSON>…" }`, so that a progress frame
 * stays well under `MAX_FRAME_BYTES` (1 MiB). Default 16384 characters.
 */
export function truncateAgentEvent(event: AgentEvent, maxChars = 16_384): AgentEvent {
  switch (event.kind) {
    case 'text':
    case 'final':
      return { ...event, text: cut(event.text, maxChars) };
    case 'tool_call':
      return { ...event, name: cut(event.name, 256), input: cutValue(event.input, maxChars) };
    case 'tool_result':
      return { ...event, output: cut(event.output, maxChars) };
    case 'error':
      return { ...event, message: cut(event.message, maxChars) };
    case 'raw':
      return { ...event, line: typeof event.line === 'string' ? cut(event.line, maxChars) : cutValue(event.line, maxChars) };
    default:
      return event;
  }
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** A one-line human description of `event` (at most about 200 characters), the `message` of its progress frame. */
export function describeAgentEvent(event: AgentEvent): string {
  switch (event.kind) {
    case 'session':
      return `session ${event.sessionId}${event.model ? ` (${event.model})` : ''}`;
    case 'text':
      return oneLine(event.text, 200);
    case 'tool_call': {
      let input = '';
      try {
        input = JSON.stringify(event.input) ?? '';
      } catch {
        input = '';
      }
      return oneLine(`${event.name} ${input}`, 200);
    }
    case 'tool_result':
      return oneLine(`${event.isError ? 'tool error' : 'tool result'}: ${event.output}`, 200);
    case 'usage':
      return `usage: ${event.inputTokens} input tokens, ${event.outputTokens} output tokens${event.costUsd === undefined ? '' : `, $${event.costUsd.toFixed(6)}`}`;
    case 'error':
      return oneLine(`error: ${event.message}`, 200);
    case 'final':
      return oneLine(`${event.isError ? 'failed' : 'answer'}: ${event.text}`, 200);
    case 'raw': {
      const line = typeof event.line === 'string' ? event.line : (JSON.stringify(event.line) ?? '');
      return oneLine(`unrecognised ${event.source} output: ${line}`, 200);
    }
  }
}
