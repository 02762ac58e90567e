import { WarrenError } from '@warren/core';

/** `addAgent` was given a name that is already in the world. `eid` is the existing agent's entity. */
export class DuplicateAgentError extends WarrenError {
  constructor(
    readonly agent: string,
    readonly eid: number,
  ) {
    super('WARREN_AGENT_DUPLICATE', `agent ${JSON.stringify(agent)} is already in the world (eid ${eid})`);
  }
}

/** An operation named an agent that is not in the world (never added, or removed). */
export class UnknownAgentError extends WarrenError {
  constructor(
    readonly agent: string,
    readonly operation: string,
  ) {
    super('WARREN_AGENT_UNKNOWN', `${operation}: no agent named ${JSON.stringify(agent)} in the world`);
  }
}

/**
 * A value given for an agent is invalid: `field` names it (`spec.wipLimit`, `status`,
 * `usage.memoryBytes`, `options.intervalMs`…), `value` is what was given, `agent` the agent's name
 * when there is one.
 */
export class AgentSpecError extends WarrenError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly agent: string | undefined,
    problem: string,
  ) {
    super('WARREN_AGENT_SPEC', `${agent === undefined ? '' : `agent ${JSON.stringify(agent)}: `}${field}: ${problem}, got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return Object.prototype.toString.call(value);
}

/** An operation named a template that was never defined in the world (`defineTemplate`). */
export class UnknownTemplateError extends WarrenError {
  constructor(
    readonly template: string,
    readonly operation: string,
  ) {
    super('WARREN_TEMPLATE_UNKNOWN', `${operation}: no template named ${JSON.stringify(template)} in the world`);
  }
}
