import { WarrenError } from '@warren/core';

/**
 * The input given to `planAssignments` is malformed: a duplicate id or name, or a count or time
 * that is negative, fractional or not finite. `field` is the path of the offending value, such as
 * `tasks[3].priorityRank` or `agents[0].name`; `value` is what was found there.
 */
export class PlanInputError extends WarrenError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    message: string,
  ) {
    super('WARREN_PLAN_INPUT', `planAssignments input ${field}: ${message}`);
  }
}
