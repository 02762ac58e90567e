import { WarrenError } from '@warren/core';

/**
 * An error of the registry: bad input to a query or to the command queue. `code` says which
 * (`WARREN_COMMAND_INVALID`, `WARREN_COMMAND_UNKNOWN`, `WARREN_POLICY_DENIED`, `WARREN_QUERY_INVALID`);
 * the message names the field and value.
 */
export class RegistryError extends WarrenError {}
