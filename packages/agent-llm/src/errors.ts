/**
 * The errors this package throws on purpose. Codes are listed in the package README.
 */
import { WarrenError } from '@warren/core';

/**
 * A tool call could not be carried out: bad arguments, a path outside the home, a missing file.
 * The loop hands the message back to the model as the tool's result (`isError: true`); it never
 * ends the run.
 */
export class ToolError extends WarrenError {
  constructor(
    /** The tool's name as the model knows it. */
    readonly tool: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_AGENT_LLM_TOOL', `${tool}: ${message}`, options);
  }
}

/** A path given to a file tool resolves outside the agent's home (by `..` or through a symlink). */
export class PathOutsideHomeError extends WarrenError {
  constructor(
    readonly path: string,
    readonly home: string,
  ) {
    super('WARREN_AGENT_LLM_PATH', `path '${path}' leaves the home ${home}`);
  }
}

/** The model could not be asked: the provider (or the gateway before it) failed, or the stream broke off. */
export class ModelCallError extends WarrenError {
  constructor(
    message: string,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super('WARREN_AGENT_LLM_MODEL', message, options);
  }
}
