/**
 * @warren/core: the few things every Warren package shares.
 *
 * ```ts
 * import { WarrenError, parseDurationMs, parseBytes, silentLogger } from '@warren/core';
 * const timeoutMs = parseDurationMs('10m', 'agents/shell.yaml: runtime.timeout'); // 600000
 * const memoryMaxBytes = parseBytes('512MiB', 'agents/shell.yaml: resources.memory'); // 536870912
 * ```
 */
export { WarrenError, ConfigError, MissingCapabilityError } from './errors.js';
export { lazyChildLogger, silentLogger } from './logger.js';
export type { Logger } from './logger.js';
export { parseDurationMs, parseBytes, formatBytes } from './units.js';
export { processExists } from './process.js';
