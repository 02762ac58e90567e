import { ConfigError } from './errors.js';

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration such as `250ms`, `30s`, `10m`, `1h` or `1.5h` (or a bare number of ms) into
 * milliseconds.
 * @param value the text or number to parse.
 * @param source where the value came from, for the error message (a file and field, an option).
 * @returns a non-negative whole number of milliseconds.
 * @throws {ConfigError} if the value is not a non-negative duration.
 */
export function parseDurationMs(value: string | number, source: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new ConfigError(source, `duration must be a non-negative number of ms, got ${value}`);
    }
    return Math.round(value);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!match) {
    throw new ConfigError(source, `'${value}' is not a duration (examples: 500ms, 30s, 10m, 1h)`);
  }
  const factor = DURATION_UNITS_MS[match[2] ?? 'ms'] ?? 1;
  return Math.round(Number(match[1]) * factor);
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1_000,
  kb: 1_000,
  m: 1_000_000,
  mb: 1_000_000,
  g: 1_000_000_000,
  gb: 1_000_000_000,
  ki: 1_024,
  kib: 1_024,
  mi: 1_048_576,
  mib: 1_048_576,
  gi: 1_073_741_824,
  gib: 1_073_741_824,
};

/**
 * Parses a size such as `512MiB`, `1Gi`, `100MB`, `64k` (or a bare number of bytes) into bytes.
 * Binary suffixes (KiB, MiB, GiB, or Kubernetes' Ki, Mi, Gi) are powers of 1024; decimal ones
 * (kB, MB, GB, k, M, G) powers of 1000, as in IEC 80000-13 and Kubernetes resource quantities.
 * @param source where the value came from, for the error message.
 * @returns a non-negative whole number of bytes.
 * @throws {ConfigError} if the value is not a size.
 */
export function parseBytes(value: string | number, source: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new ConfigError(source, `size must be a non-negative number of bytes, got ${value}`);
    }
    return Math.round(value);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const factor = match ? BYTE_UNITS[(match[2] ?? '').toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new ConfigError(source, `'${value}' is not a size (examples: 512MiB, 1Gi, 100MB, 4096)`);
  }
  return Math.round(Number(match[1]) * factor);
}

const BINARY_UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * A byte count in the largest binary unit it reaches, for messages: `1 GiB`, `512 MiB`,
 * `1.5 GiB`, `100 bytes` (one decimal when not whole).
 */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${BINARY_UNITS[unit]}`;
}
