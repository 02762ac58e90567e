import { readFileSync } from 'node:fs';

/** Warren's version, from the supervisor package's `package.json` (what `/api/v1/status` and the metrics report). */
export const WARREN_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
