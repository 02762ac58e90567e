/**
 * The mapper of opencode's stream (`opencode run --format json`, checked against 1.18.33): one JSON
 * object per line `{ type, timestamp, sessionID, part | error }`, `type` one of `step_start`,
 * `text` (part.text: the text of one part, complete), `reasoning`, `tool_use` (one line per
 * finished call: part.callID, part.tool, part.state {status `completed` | `error`, input, output,
 * error}), `step_finish` (part.reason: `tool-calls` while the loop goes on, else the end of the
 * run; part.tokens {input, output, reasoning, cache: {read, write}}, part.cost in USD) and
 * `error` (error: {name, data: {message}}). The answer is the text of the last step.
 */
import type { AgentEvent, LineMapper } from '../agent-events.js';
import { count, isRecord, raw, record, str } from './shared.js';

const SOURCE = 'opencode';

/** A new mapper for one opencode run. */
export function mapOpencodeLine(): LineMapper {
  let sessionSeen = false;
  let stepText: string[] = [];
  return (value: unknown): AgentEvent[] => {
    if (!isRecord(value)) return [raw(SOURCE, value)];
    const events: AgentEvent[] = [];
    const sessionId = str(value.sessionID);
    if (sessionId && !sessionSeen) {
      sessionSeen = true;
      events.push({ kind: 'session', sessionId });
    }
    const part = record(value.part);
    switch (value.type) {
      case 'step_start':
        stepText = [];
        return events;
      case 'text': {
        const text = str(part.text);
        if (text === undefined) return [...events, raw(SOURCE, value)];
        stepText.push(text);
        return [...events, { kind: 'text', text }];
      }
      case 'reasoning':
        return events;
      case 'tool_use': {
        const state = record(part.state);
        const id = str(part.callID) ?? str(part.id) ?? '';
        const isError = state.status === 'error';
        const output = isError ? (str(state.error) ?? str(state.output) ?? '') : (str(state.output) ?? '');
        return [...events, { kind: 'tool_call', id, name: str(part.tool) ?? '', input: state.input ?? null }, { kind: 'tool_result', id, output, isError }];
      }
      case 'step_finish': {
        const tokens = record(part.tokens);
        const cache = record(tokens.cache);
        const cost = part.cost;
        events.push({
          kind: 'usage',
          inputTokens: count(tokens.input) + count(cache.read) + count(cache.write),
          outputTokens: count(tokens.output) + count(tokens.reasoning),
          ...(typeof cost === 'number' && Number.isFinite(cost) && cost >= 0 ? { costUsd: cost } : {}),
        });
        if (part.reason !== 'tool-calls') {
          const isError = part.reason === 'error';
          events.push({ kind: 'final', text: stepText.join('\n'), isError });
        }
        return events;
      }
      case 'error': {
        const error = record(value.error);
        const message = str(record(error.data).message) ?? str(error.message) ?? str(error.name) ?? 'opencode reported an error';
        return [...events, { kind: 'error', message }];
      }
      default:
        return [...events, raw(SOURCE, value)];
    }
  };
}
