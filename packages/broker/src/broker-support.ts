/**
 * Small functions the broker's modules share: how a JetStream failure is classified (an election
 * in progress, an API error code), positive-integer options, and message headers.
 */
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { NoRespondersError, RequestError, TimeoutError, type MsgHdrs } from '@nats-io/nats-core';
import { ConfigError } from '@warren/core';
import { isValidTracestate, tryParseTraceparent } from '@warren/telemetry';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from './subjects.js';

/** The longest wait before a consume loop reopens its pull, in ms (the backoff starts at 250 ms). */
export const MAX_RESTART_DELAY_MS = 5_000;

/** How long one pull request of a consume loop stays open, in ms (its idle heartbeat is half of it). */
export const PULL_EXPIRES_MS = 5_000;
/**
 * How long one pull request of an agent's assignment consumer stays open, in ms (its idle
 * heartbeat is half of it). There is one such consumer per live agent, nearly all of them idle
 * most of the time: each pull and heartbeat wakes the supervisor and nats-server, so a thousand
 * idle agents with {@link PULL_EXPIRES_MS} cost ~600 NATS messages a second. A new assignment is
 * delivered at once either way (the pull waits on the server); only a pull lost with a cluster's
 * consumer leader is noticed later (two missed heartbeats: this long instead of 5 s).
 */
export const AGENT_PULL_EXPIRES_MS = 30_000;
/**
 * The most messages one pull of a consume loop asks for (`max_messages`; more when the loop takes
 * more at once). The consumer's `max_ack_pending` (the loop's `maxInFlight`) still bounds what the
 * server delivers unacknowledged, so a larger batch buffers nothing more: it only spares pulls. The
 * client pulls again once a quarter of the batch was delivered; with a batch of 3 an agent taking
 * one task at a time sent one pull request (a message to the server and a JetStream operation in
 * it) per task, with this one a pull per 32 tasks.
 */
export const PULL_BATCH = 128;
/** The first and the longest wait between retries of a call that met an election, in ms. */
export const ELECTION_RETRY_FIRST_MS = 250;
export const ELECTION_RETRY_MAX_MS = 2_000;

/**
 * Whether a JetStream call failed because nobody could answer for now: it timed out, found no
 * responders, or JetStream answered `503` (no leader for the stream or the cluster, as during an
 * election; a NATS cluster's `JetStream system temporarily unavailable`).
 */
export function isElectionError(error: unknown): boolean {
  if (error instanceof TimeoutError || error instanceof NoRespondersError) return true;
  if (error instanceof RequestError && error.isNoResponders()) return true;
  if (error instanceof JetStreamApiError) return error.status === 503 || error.code === 10008;
  const status = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof JetStreamError && (status === 503 || status === 408)) return true;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause !== undefined && cause !== error && isElectionError(cause)) return true;
  return error instanceof Error && /\b503\b|timeout|no responders|temporarily unavailable/i.test(error.message);
}

export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True if `version` (`2.9.10`) is at least `major.minor`. */
export function versionAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const match = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return false;
  const [maj, min] = [Number(match[1]), Number(match[2])];
  return maj > major || (maj === major && min >= minor);
}

export function positiveInteger(value: number | undefined, fallback: number, source: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(source, `must be a positive integer, got ${value}`);
  return value;
}

export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [key, values] of h) {
    if (values[0] !== undefined) out[key] = values[0];
  }
  return out;
}

export function headerValue(record: Readonly<Record<string, string>>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(record)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

/** The valid trace context headers of a message: `traceparent`, and `tracestate` only beside it (W3C trace context §3.3). */
export function traceHeaders(record: Readonly<Record<string, string>>): { traceparent: string | undefined; tracestate: string | undefined } {
  const traceparent = headerValue(record, TRACEPARENT_HEADER);
  if (tryParseTraceparent(traceparent) === undefined) return { traceparent: undefined, tracestate: undefined };
  const tracestate = headerValue(record, TRACESTATE_HEADER);
  return { traceparent, tracestate: tracestate !== undefined && isValidTracestate(tracestate) ? tracestate : undefined };
}
