import { WarrenError } from '@warren/core';

/**
 * A broker operation failed: connecting, creating a stream or consumer, publishing, or a
 * JetStream API call. `operation` names what was tried (`publish`, `ensureStreams`, …) and
 * `target` the subject, stream or consumer involved. The NATS error is the `cause`.
 */
export class BrokerError extends WarrenError {
  constructor(
    readonly operation: string,
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_BROKER', `${operation} ${target}: ${message}`, options);
  }
}

/**
 * A name that would become a subject token (agent name, task id, event kind, message id) is
 * not valid. `kind` says which name it is, `value` holds the refused text, `rule` the pattern.
 */
export class InvalidNameError extends WarrenError {
  constructor(
    readonly kind: string,
    readonly value: string,
    readonly rule: string,
  ) {
    super('WARREN_BROKER_NAME', `${kind} ${JSON.stringify(value)} is not valid: it must match ${rule}`);
  }
}

/**
 * A message payload is not valid: not JSON, or it fails its schema, or it contradicts its
 * subject or headers. `subject` is where it was (or would be) published, `field` the dotted path
 * of the first offending field (`''` for the whole payload), `reason` what is wrong with it.
 */
export class InvalidMessageError extends WarrenError {
  constructor(
    readonly subject: string,
    readonly field: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      'WARREN_BROKER_MESSAGE',
      `invalid message on ${subject}${field === '' ? '' : ` at field '${field}'`}: ${reason}`,
      options,
    );
  }
}

/**
 * The embedded nats-server did not start or exited early. `storeDir` is its store, `stderrTail`
 * the last lines it printed, `exitCode`/`signal` how it ended (null while it still ran).
 */
export class NatsServerError extends WarrenError {
  constructor(
    readonly storeDir: string,
    message: string,
    readonly stderrTail: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    options?: ErrorOptions,
  ) {
    super(
      'WARREN_NATS_SERVER',
      `nats-server (store ${storeDir}): ${message}${stderrTail ? `\n--- nats-server output (tail) ---\n${stderrTail}` : ''}`,
      options,
    );
  }
}

/**
 * No reply came to request `requestId` of `requester` within `timeoutMs` ms (see
 * `Broker.awaitReply`). Code `WARREN_MESSAGE_TIMEOUT`.
 */
export class MessageTimeoutError extends WarrenError {
  constructor(
    readonly requester: string,
    readonly requestId: string,
    readonly timeoutMs: number,
  ) {
    super('WARREN_MESSAGE_TIMEOUT', `no reply to request ${requestId} of ${requester} within ${timeoutMs} ms`);
  }
}
