/**
 * Reading what the Kubernetes API answers: a failed request's `Status` (`apiStatus`, `apiError`),
 * quantities (`parseQuantity`), Go durations as metrics-server writes them, and an exec's final
 * `Status`.
 */
import { ApiException } from '@kubernetes/client-node';
import type { V1Status } from '@kubernetes/client-node';
import { WarrenError } from '@warren/core';
import { RuntimeError, type AgentExit } from '@warren/runtime';


/** The `Status` of a failed API request (its `code`, `reason`, `message`), or null for other errors. */
export function apiStatus(error: unknown): { code: number; reason: string | undefined; message: string } | null {
  if (!(error instanceof ApiException)) return null;
  let body: unknown = error.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = { message: body };
    }
  }
  const status = (body ?? {}) as { message?: string; reason?: string };
  return { code: error.code, reason: status.reason, message: status.message ?? `HTTP ${error.code}` };
}

/** Whether `error` is a Kubernetes API error whose `Status` (or HTTP) code is `code` (e.g. 404, 409). Never throws. */
export function isStatus(error: unknown, code: number): boolean {
  return apiStatus(error)?.code === code;
}

/** Turns an API failure into a `RuntimeError` naming what was being done and the API's own message. */
export function apiError(agent: string, what: string, error: unknown): RuntimeError {
  const status = apiStatus(error);
  const detail = status === null ? (error instanceof Error ? error.message : String(error)) : `${status.code} ${status.reason ?? ''}: ${status.message}`.replace(' :', ':');
  return new RuntimeError(agent, `${what}: ${detail}`, undefined, { cause: error });
}

/** Parses a Kubernetes quantity (`250m`, `1234567n`, `64Mi`, `123456Ki`, `1G`, `2`) into a number of units. */
export function parseQuantity(quantity: string): number {
  const match = /^([0-9.]+)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(quantity.trim());
  if (match === null) throw new WarrenError('WARREN_KUBE_QUANTITY', `${JSON.stringify(quantity)} is not a Kubernetes quantity`);
  const factors: Record<string, number> = {
    n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5, Ei: 1024 ** 6,
  };
  return Number(match[1]) * (match[2] === undefined ? 1 : (factors[match[2]] ?? 1));
}

/** An exec's exit from its final `Status` (`Success`, or `NonZeroExitCode` with the `ExitCode` cause). */
export function execExit(status: V1Status | undefined): AgentExit {
  if (status === undefined) return { kind: 'setup_error', message: 'the exec stream ended without a status' };
  if (status.status === 'Success') return { kind: 'succeeded', exitCode: 0 };
  const code = Number(status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message);
  if (status.reason === 'NonZeroExitCode' && Number.isInteger(code) && code > 0) return { kind: 'failed', exitCode: code };
  return { kind: 'setup_error', message: status.message ?? 'the exec failed' };
}

/** `30s`, `1m0s`, `1.5s` (a Go duration, as metrics-server writes `window`) in seconds; 0 when unreadable. */
export function parseDurationSeconds(text: string | undefined): number {
  if (text === undefined) return 0;
  let seconds = 0;
  for (const [, value, unit] of text.matchAll(/([0-9.]+)(h|ms|m|s)/g)) {
    seconds += Number(value) * ({ h: 3600, m: 60, s: 1, ms: 0.001 }[unit as 'h' | 'm' | 's' | 'ms']);
  }
  return seconds;
}
