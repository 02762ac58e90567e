/**
 * The wire format of what an agent runtime reports while it works: one JSON object per stdout line
 * (NDJSON), each an {@link AgentEvent}. It is the runner's internal event type
 * (`packages/agent-runner/src/agent-events.ts`, the shared design's item 4), copied here because
 * this program runs inside the sandbox and imports nothing from the runner; the runner validates
 * every line it reads, so the two copies cannot drift silently.
 *
 * A run prints `session` once, then any number of `text`, `tool_call`, `tool_result`, `usage`,
 * `error` and `raw` events, and ends with exactly one `final`.
 */

/** One event of an agent's run. */
export type AgentEvent =
  /** The conversation the run belongs to (kept between tasks), and the model, once at the start. */
  | { kind: 'session'; sessionId: string; model?: string }
  /** One assistant message's text. */
  | { kind: 'text'; text: string }
  /** The model asked for a tool; `input` is the parsed arguments (the raw string when not JSON). */
  | { kind: 'tool_call'; id: string; name: string; input: unknown }
  /** What the tool call `id` returned, as the model sees it. */
  | { kind: 'tool_result'; id: string; output: string; isError: boolean }
  /** Tokens of one model response; `costUsd` when the provider says. */
  | { kind: 'usage'; inputTokens: number; outputTokens: number; costUsd?: number; model?: string }
  /** Something went wrong; the run may go on (see `final.isError`). */
  | { kind: 'error'; message: string }
  /** The run's answer: the task's result summary. Always the last event. */
  | { kind: 'final'; text: string; isError: boolean }
  /** A line or notice the mapper does not know: kept, never fatal. */
  | { kind: 'raw'; source: string; line: unknown };

/** The `kind`s of {@link AgentEvent}, in the order the union lists them. */
export const AGENT_EVENT_KINDS = ['session', 'text', 'tool_call', 'tool_result', 'usage', 'error', 'final', 'raw'] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isOptional = <T>(v: unknown, check: (x: unknown) => x is T): boolean => v === undefined || check(v);
const isCost = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Why `value` is not an {@link AgentEvent}, or undefined when it is one: the first field that is
 * missing or of the wrong type, by name (`usage.inputTokens must be a non-negative integer`).
 * Unknown extra fields are allowed.
 */
export function agentEventProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'an event must be a JSON object';
  const kind = value.kind;
  const need = (field: string, ok: boolean, what: string): string | undefined => (ok ? undefined : `${String(kind)}.${field} must be ${what}`);
  switch (kind) {
    case 'session':
      return need('sessionId', isString(value.sessionId) && value.sessionId !== '', 'a non-empty string') ?? need('model', isOptional(value.model, isString), 'a string');
    case 'text':
      return need('text', isString(value.text), 'a string');
    case 'tool_call':
      return need('id', isString(value.id), 'a string') ?? need('name', isString(value.name) && value.name !== '', 'a non-empty string') ?? need('input', 'input' in value, 'present');
    case 'tool_result':
      return need('id', isString(value.id), 'a string') ?? need('output', isString(value.output), 'a string') ?? need('isError', typeof value.isError === 'boolean', 'a boolean');
    case 'usage':
      return (
        need('inputTokens', isCount(value.inputTokens), 'a non-negative integer') ??
        need('outputTokens', isCount(value.outputTokens), 'a non-negative integer') ??
        need('costUsd', isOptional(value.costUsd, isCost), 'a non-negative number') ??
        need('model', isOptional(value.model, isString), 'a string')
      );
    case 'error':
      return need('message', isString(value.message), 'a string');
    case 'final':
      return need('text', isString(value.text), 'a string') ?? need('isError', typeof value.isError === 'boolean', 'a boolean');
    case 'raw':
      return need('source', isString(value.source), 'a string') ?? need('line', 'line' in value, 'present');
    default:
      return `kind must be one of ${AGENT_EVENT_KINDS.join(', ')}, got ${JSON.stringify(kind) ?? 'nothing'}`;
  }
}

/** Whether `value` is a well-formed {@link AgentEvent} (see {@link agentEventProblem}). */
export function isAgentEvent(value: unknown): value is AgentEvent {
  return agentEventProblem(value) === undefined;
}
