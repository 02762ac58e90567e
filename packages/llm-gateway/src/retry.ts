/**
 * How the gateway retries a provider that fails before it answered. All times in ms.
 */
export interface RetryOptions {
  /** Delay before the second attempt. Default 500. */
  readonly initialDelayMs: number;
  /** Each next delay is the previous one times this. Default 2. */
  readonly factor: number;
  /** Largest computed delay (a provider's `retry-after` may ask for more). Default 8000. */
  readonly maxDelayMs: number;
  /** An attempt whose response headers have not arrived after this long is abandoned. Default 60000. */
  readonly headersTimeoutMs: number;
  /** Longest silence between two chunks of an answer's body before it is cut. Default 300000. */
  readonly bodyTimeoutMs: number;
  /** How long to keep retrying when the agent runs no task (no deadline to follow). Default 120000. */
  readonly withoutTaskMs: number;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY: RetryOptions = {
  initialDelayMs: 500,
  factor: 2,
  maxDelayMs: 8_000,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 300_000,
  withoutTaskMs: 120_000,
};

/**
 * HTTP statuses worth another attempt: request timeout (408), rate limited (429), the provider's side
 * failed (500, 502, 503, 504) or overloaded (Anthropic's 529).
 */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504, 529]);

/**
 * The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed: exponential
 * backoff with "equal jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015):
 * half of `min(maxDelayMs, initialDelayMs × factor^(attempt-1))` plus a random part of the other half.
 * @param random a number in [0, 1), `Math.random()` by default.
 */
export function backoffDelayMs(options: RetryOptions, attempt: number, random: number = Math.random()): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * options.factor ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

/**
 * The wait a provider asks for: `retry-after-ms` (milliseconds, sent by OpenAI), else
 * `retry-after` as seconds or as an HTTP date (RFC 9110 §10.2.3).
 * @returns ms to wait (≥ 0), or undefined when neither header is usable.
 */
export function retryAfterMs(headers: Readonly<Record<string, string | string[] | undefined>>, nowMs: number): number | undefined {
  const first = (name: string): string | undefined => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const ms = first('retry-after-ms');
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.max(0, Math.round(Number(ms)));
  const after = first('retry-after');
  if (after === undefined) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Math.max(0, Math.round(Number(after) * 1000));
  const dateMs = Date.parse(after);
  return Number.isNaN(dateMs) ? undefined : Math.max(0, dateMs - nowMs);
}
