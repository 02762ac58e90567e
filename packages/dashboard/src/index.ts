/**
 * `@warren/dashboard`: the operator dashboard in the browser, built into static files that the
 * HTTP server serves at `/` and `/assets/*`. This module is the package's whole public surface:
 *
 * - {@link dashboardDir}: where the built files are (`index.html`, `assets/`).
 * - {@link firstLoadBytes}: the gzip size of what `/` loads first.
 *
 * The browser code lives in `src/app/` (Preact with htm and signals; uPlot and d3-force in the
 * chunks of the views that need them) and is bundled by `build.mjs` with esbuild when Warren
 * builds (`npm run build`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The package's root folder (this file is `src/index.ts` or `dist/lib/index.js` under it). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`@warren/dashboard: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/**
 * The absolute path of the built dashboard: `index.html` and hashed files under `assets/`
 * (`<package>/dist/site`). Serve it as is: `/` is `index.html`, `/assets/<file>` the assets
 * (immutable, their names hold a content hash). The folder exists after `npm run build`;
 * this function does not check.
 */
export function dashboardDir(): string {
  return resolve(packageRoot(), 'dist', 'site');
}

/** The files `/` loads before the first paint, as written by the build (`first-load.json`). */
interface FirstLoad {
  /** Paths relative to {@link dashboardDir}: `index.html`, the entry script, its static imports, the style sheet. */
  readonly files: readonly string[];
}

/**
 * The gzip size in bytes of what `/` loads first: `index.html`, the entry script with the chunks it
 * imports statically, and the style sheet (each file gzipped on its own at the default level, as
 * a server compressing responses would send them). `dir` defaults to {@link dashboardDir}.
 * Throws an Error naming the file when the build's `first-load.json` or a file it lists is missing.
 */
export function firstLoadBytes(dir: string = dashboardDir()): number {
  const manifestPath = join(dir, 'first-load.json');
  if (!existsSync(manifestPath)) throw new Error(`@warren/dashboard: ${manifestPath} is missing; run npm run build`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as FirstLoad;
  let total = 0;
  for (const file of manifest.files) total += gzipSync(readFileSync(join(dir, file))).length;
  return total;
}
