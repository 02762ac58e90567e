import { WarrenError } from '@warren/core';

/**
 * A `traceparent` (or `tracestate`) value is not valid W3C trace context
 * (https://www.w3.org/TR/trace-context/). `field` names the part at fault (`version`, `trace-id`,
 * `parent-id`, `trace-flags`, `format`, `tracestate`).
 */
export class TraceparentError extends WarrenError {
  constructor(
    readonly field: string,
    readonly value: string,
    reason: string,
  ) {
    super('WARREN_TRACEPARENT', `invalid traceparent ${JSON.stringify(value.slice(0, 80))}: ${field} ${reason}`);
  }
}
