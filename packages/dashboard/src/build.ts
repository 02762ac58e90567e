/**
 * Bundles the dashboard for the browser with esbuild: `src/app/main.ts` (Preact, htm, signals)
 * with code splitting (analytics with uPlot and the graph with d3-force become chunks loaded on
 * demand), `src/app/style.css` with uPlot's style sheet, an SVG icon, and an `index.html` that
 * references only these local, content-hashed files. No network: everything comes from
 * node_modules. Run by `npm run build` (`node packages/dashboard/dist/lib/build.js`).
 *
 * Output (`outDir`, default {@link dashboardDir}): `index.html`, `assets/*`, and
 * `first-load.json` (`{ files }`: what `/` loads before the first paint, for {@link firstLoadBytes}).
 */
import { build, type Metafile } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dashboardDir } from './index.js';

/** Options of {@link buildDashboard}. */
export interface BuildDashboardOptions {
  /** Where to write; emptied first. Default {@link dashboardDir}. */
  readonly outDir?: string;
  /** Minify (default true). */
  readonly minify?: boolean;
}

/** What {@link buildDashboard} wrote, paths relative to `outDir`. */
export interface BuildDashboardResult {
  readonly outDir: string;
  /** Every file written. */
  readonly files: readonly string[];
  /** What `/` loads first: `index.html`, the entry script and its static imports, the style sheet. */
  readonly firstLoad: readonly string[];
}

/** The package's root (this file is `src/build.ts` or `dist/lib/build.js`). */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..', '..') : resolve(here, '..');
}

/** The static imports of an output file, transitively (dynamic imports are not followed). */
function staticImports(metafile: Metafile, output: string, seen = new Set<string>()): Set<string> {
  for (const imported of metafile.outputs[output]?.imports ?? []) {
    if (imported.kind !== 'import-statement' || seen.has(imported.path)) continue;
    seen.add(imported.path);
    staticImports(metafile, imported.path, seen);
  }
  return seen;
}

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#3b5bdb"/><path d="M7 22V12l5 6 4-8 4 8 5-6v10" fill="none" stroke="#fff" stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round"/></svg>\n`;

/**
 * Builds the dashboard into `outDir`. Rejects with esbuild's error (naming the file and line) when
 * a source does not compile.
 */
export async function buildDashboard(options: BuildDashboardOptions = {}): Promise<BuildDashboardResult> {
  const root = packageRoot();
  const outDir = resolve(options.outDir ?? dashboardDir());
  const assets = join(outDir, 'assets');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: 'src/app/main.ts', style: 'src/app/style.css' },
    outdir: assets,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome111', 'firefox111', 'safari16.4'],
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    assetNames: '[name]-[hash]',
    minify: options.minify ?? true,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const metafile = result.metafile;
  const outputs = Object.keys(metafile.outputs);
  const entry = outputs.find((o) => metafile.outputs[o]?.entryPoint === 'src/app/main.ts');
  const css = outputs.find((o) => o.endsWith('.css'));
  if (entry === undefined || css === undefined) throw new Error(`@warren/dashboard build: no entry script or style sheet among ${outputs.join(', ')}`);
  const rel = (o: string): string => relative(outDir, resolve(root, o)).split('\\').join('/');
  const preloads = [...staticImports(metafile, entry)].map(rel);

  const iconName = `assets/icon-${createHash('sha256').update(ICON).digest('hex').slice(0, 8)}.svg`;
  writeFileSync(join(outDir, iconName), ICON);
  const template = readFileSync(join(root, 'src', 'app', 'index.html'), 'utf8');
  const html = template
    .replace('<!--icon-->', `<link rel="icon" type="image/svg+xml" href="${iconName}">`)
    .replace('<!--style-->', `<link rel="stylesheet" href="${rel(css)}">`)
    .replace('<!--script-->', [...preloads.map((p) => `<link rel="modulepreload" href="${p}">`), `<script type="module" src="${rel(entry)}"></script>`].join('\n    '));
  writeFileSync(join(outDir, 'index.html'), html);
  const firstLoad = ['index.html', rel(entry), ...preloads, rel(css), iconName];
  writeFileSync(join(outDir, 'first-load.json'), `${JSON.stringify({ files: firstLoad }, null, 2)}\n`);
  return { outDir, files: ['index.html', 'first-load.json', iconName, ...outputs.map(rel)], firstLoad };
}

// Run as a program: `node dist/lib/build.js [outDir]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildDashboard({ outDir: process.argv[2] }).then(
    (r) => console.log(`dashboard: ${r.files.length} files in ${r.outDir}`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
