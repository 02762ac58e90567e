import { WarrenError } from '@warren/core';

/**
 * An agent runtime cannot do what was asked (code `WARREN_RUNTIME`): the start spec is invalid,
 * the runtime is closed, or it lacks what the request needs (a broker to start instances).
 * `agent` names the agent concerned; `field` the start spec field at fault, if any.
 */
export class RuntimeError extends WarrenError {
  constructor(
    readonly agent: string,
    message: string,
    readonly field?: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_RUNTIME', `agent ${agent}: ${field === undefined ? '' : `start spec field ${field}: `}${message}`, options);
  }
}
