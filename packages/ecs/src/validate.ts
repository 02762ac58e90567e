import { AgentSpecError } from './errors.js';

/** Checks that `value` is an integer from 0 to `max`; returns it. @throws {AgentSpecError} naming `field`. */
export function requireCount(field: string, value: unknown, agent: string | undefined, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new AgentSpecError(field, value, agent, `expected an integer from 0 to ${max}`);
  }
  return value;
}

/** Checks that `value` is a finite time in ms; returns it. @throws {AgentSpecError} naming `field`. */
export function requireTime(field: string, value: unknown, agent: string | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new AgentSpecError(field, value, agent, 'expected a finite time in ms');
  }
  return value;
}

/** Checks that `value` is a finite, non-negative number of ms; returns it. @throws {AgentSpecError} naming `field`. */
export function requireMs(field: string, value: unknown, agent?: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new AgentSpecError(field, value, agent, 'expected a finite, non-negative number of ms');
  }
  return value;
}

/** Orders strings by UTF-16 code units (locale-free, as the planner does). */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
