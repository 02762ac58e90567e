/** Small readers shared by the CLI stream mappers: they never throw on any JSON value. */
import type { AgentEvent } from '../agent-events.js';

/** Whether `value` is a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as an object, or an empty one. */
export function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

/** `value` when it is a string, else undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** `value` when it is a finite number >= 0, else 0. */
export function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** A `raw` event: a line the mapper of `source` does not know. */
export function raw(source: string, line: unknown): AgentEvent {
  return { kind: 'raw', source, line };
}

/** Text of a tool result's content: a string, or the `text` of each `{ type: 'text' }` block joined by newlines. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((block) => (isRecord(block) && typeof block.text === 'string' ? block.text : isRecord(block) ? `[${String(block.type)}]` : ''))
      .filter((text) => text !== '')
      .join('\n');
  }
  if (content === undefined || content === null) return '';
  return JSON.stringify(content);
}
