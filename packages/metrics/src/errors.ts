import { WarrenError } from '@warren/core';

/**
 * An error of `@warren/metrics`: an option of {@link createMetrics} that cannot be used. `code` is
 * `WARREN_METRICS_OPTION`; the message names the option and the value given.
 */
export class MetricsError extends WarrenError {}
