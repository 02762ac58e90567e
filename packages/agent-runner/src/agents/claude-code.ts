/**
 * The mapper of claude-code's stream (`claude -p --output-format stream-json --verbose`, checked
 * against 2.1.332): one JSON object per line, `type` one of
 * - `system` (subtype `init`: `session_id`, `model`; other subtypes are status notes),
 * - `assistant` (`message.content`: `text`, `tool_use` {id, name, input} and `thinking` blocks),
 * - `user` (`message.content`: `tool_result` {tool_use_id, content, is_error} blocks),
 * - `result` (the run's end: `result` text, `is_error`, `subtype` `success` or `error_*` with
 *   `errors`, the run's total `usage` and `total_cost_usd`, `modelUsage` keyed by model),
 * - `stream_event` (partial messages, only with `--include-partial-messages`: not used).
 * Usage comes from `result` only: the `assistant` lines repeat the partial usage of each message.
 */
import type { AgentEvent, LineMapper } from '../agent-events.js';
import { contentText, count, isRecord, raw, record, str } from './shared.js';

const SOURCE = 'claude-code';

/** A new mapper for one claude-code run. */
export function mapClaudeCodeLine(): LineMapper {
  return (value: unknown): AgentEvent[] => {
    if (!isRecord(value)) return [raw(SOURCE, value)];
    switch (value.type) {
      case 'system': {
        if (value.subtype !== 'init') return [];
        const sessionId = str(value.session_id);
        if (!sessionId) return [raw(SOURCE, value)];
        const model = str(value.model);
        return [{ kind: 'session', sessionId, ...(model ? { model } : {}) }];
      }
      case 'assistant': {
        const content = record(value.message).content;
        if (!Array.isArray(content)) return [raw(SOURCE, value)];
        const events: AgentEvent[] = [];
        for (const block of content) {
          const b = record(block);
          if (b.type === 'text' && typeof b.text === 'string') events.push({ kind: 'text', text: b.text });
          else if (b.type === 'tool_use') events.push({ kind: 'tool_call', id: str(b.id) ?? '', name: str(b.name) ?? '', input: b.input ?? null });
          else if (b.type !== 'thinking' && b.type !== 'redacted_thinking') events.push(raw(SOURCE, block));
        }
        return events;
      }
      case 'user': {
        const content = record(value.message).content;
        if (!Array.isArray(content)) return [];
        const events: AgentEvent[] = [];
        for (const block of content) {
          const b = record(block);
          if (b.type === 'tool_result') {
            events.push({ kind: 'tool_result', id: str(b.tool_use_id) ?? '', output: contentText(b.content), isError: b.is_error === true });
          }
        }
        return events;
      }
      case 'result': {
        const usage = record(value.usage);
        const model = Object.keys(record(value.modelUsage))[0];
        const cost = value.total_cost_usd;
        const events: AgentEvent[] = [
          {
            kind: 'usage',
            inputTokens: count(usage.input_tokens) + count(usage.cache_creation_input_tokens) + count(usage.cache_read_input_tokens),
            outputTokens: count(usage.output_tokens),
            ...(typeof cost === 'number' && Number.isFinite(cost) && cost >= 0 ? { costUsd: cost } : {}),
            ...(model ? { model } : {}),
          },
        ];
        const isError = value.is_error === true || (typeof value.subtype === 'string' && value.subtype !== 'success');
        const errors = Array.isArray(value.errors) ? value.errors.filter((e): e is string => typeof e === 'string') : [];
        const text = str(value.result) ?? (errors.length > 0 ? errors.join('\n') : isError ? `claude-code ended with ${String(value.subtype)}` : '');
        if (isError) events.push({ kind: 'error', message: errors.length > 0 ? errors.join('\n') : text });
        events.push({ kind: 'final', text, isError });
        return events;
      }
      case 'stream_event':
        return [];
      default:
        return [raw(SOURCE, value)];
    }
  };
}
