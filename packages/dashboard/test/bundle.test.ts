import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard, type BuildDashboardResult } from '../src/build.js';
import { dashboardDir, firstLoadBytes } from '../src/index.js';

/** The budget the issue sets for the first load, gzipped. */
const FIRST_LOAD_BUDGET_BYTES = 300 * 1024;
/** Namespace URIs that appear in the libraries as plain strings (never fetched). */
const NAMESPACES = new Set(['http://www.w3.org/2000/svg', 'http://www.w3.org/1999/xhtml', 'http://www.w3.org/1998/Math/MathML', 'http://www.w3.org/1999/xlink']);

describe('the dashboard bundle', () => {
  let dir: string;
  let built: BuildDashboardResult;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-'));
    built = await buildDashboard({ outDir: join(dir, 'site') });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds index.html and content-hashed assets from node_modules alone', () => {
    expect(built.files).toContain('index.html');
    for (const file of built.files) expect(existsSync(join(built.outDir, file)), file).toBe(true);
    const assets = built.files.filter((f) => f.startsWith('assets/'));
    expect(assets.some((f) => /^assets\/app-[A-Z0-9]+\.js$/.test(f))).toBe(true);
    expect(assets.some((f) => /^assets\/style-[A-Z0-9]+\.css$/.test(f))).toBe(true);
    // Analytics (uPlot) and the graph (d3-force) are chunks of their own, not in the first load.
    const lazy = assets.filter((f) => f.endsWith('.js') && !built.firstLoad.includes(f));
    expect(lazy.length).toBeGreaterThanOrEqual(2);
    const firstLoadJs = built.firstLoad.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(built.outDir, f), 'utf8')).join('\n');
    const lazyJs = lazy.map((f) => readFileSync(join(built.outDir, f), 'utf8')).join('\n');
    // `velocityDecay` is a d3-force simulation method, `u-legend` a uPlot class name.
    for (const marker of ['velocityDecay', 'u-legend']) {
      expect(lazyJs).toContain(marker);
      expect(firstLoadJs).not.toContain(marker);
    }
  });

  it('has an index.html that references only its own assets, with no inline script or style', () => {
    const html = readFileSync(join(built.outDir, 'index.html'), 'utf8');
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1] ?? '');
    expect(refs.length).toBeGreaterThanOrEqual(3);
    for (const ref of refs) {
      expect(ref, ref).toMatch(/^assets\/[\w.-]+$/);
      expect(existsSync(join(built.outDir, ref)), ref).toBe(true);
    }
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style="/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('fetches nothing from elsewhere: no URL in any asset but XML namespace names, no CSS @import or url()', () => {
    for (const file of built.files.filter((f) => f.startsWith('assets/'))) {
      const text = readFileSync(join(built.outDir, file), 'utf8');
      const urls = [...text.matchAll(/https?:\/\/[^\s"'`)<>]+/g)].map((m) => m[0]);
      for (const url of urls) expect(NAMESPACES.has(url), `${file}: ${url}`).toBe(true);
      if (file.endsWith('.css')) {
        expect(text, file).not.toMatch(/@import/);
        expect(text, file).not.toMatch(/url\(/);
      }
    }
  });

  it('loads under 300 KB gzipped at first', () => {
    const bytes = firstLoadBytes(built.outDir);
    const expected = built.firstLoad.reduce((n, f) => n + gzipSync(readFileSync(join(built.outDir, f))).length, 0);
    expect(bytes).toBe(expected);
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThan(FIRST_LOAD_BUDGET_BYTES);
    expect(built.firstLoad).toEqual(expect.arrayContaining(['index.html', expect.stringMatching(/^assets\/app-/), expect.stringMatching(/^assets\/style-/)]));
  });

  it('names the missing manifest when the dashboard was not built', () => {
    expect(() => firstLoadBytes(join(dir, 'nowhere'))).toThrow(/first-load\.json is missing/);
  });

  it('says where the built dashboard lives', () => {
    expect(dashboardDir()).toMatch(/packages\/dashboard\/dist\/site$/);
  });
});
