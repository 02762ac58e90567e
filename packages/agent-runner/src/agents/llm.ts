/**
 * The mapper of Warren's own agent loop (`packages/agent-llm`), which prints {@link AgentEvent}s as
 * JSON lines: a validating identity. A line that is not a valid event is kept as `raw`.
 */
import { agentEventProblem, type AgentEvent, type LineMapper } from '../agent-events.js';
import { raw } from './shared.js';

/** A new mapper for one run of the built-in loop. */
export function mapLlmLine(): LineMapper {
  return (value: unknown): AgentEvent[] => (agentEventProblem(value) === null ? [value as AgentEvent] : [raw('llm', value)]);
}
