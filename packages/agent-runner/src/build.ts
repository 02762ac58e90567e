/**
 * Bundles the runner's entry point (`src/main.ts`) with esbuild into one CommonJS file for Node 20,
 * `dist/runner.cjs`, that requires nothing but Node's built-ins. The sandbox starts it instead of
 * the module graph under `dist/` (`node /opt/warren/agent-runner/dist/runner.cjs`): one file read
 * and compiled, no ES module resolution, which takes about 20 ms of CPU off every runner start
 * (measured in bench/results/2026-12-07-vm-sandbox.md). Run by `npm run build`
 * (`node packages/agent-runner/dist/build.js [outFile]`).
 *
 * Output: `<outFile>` (default {@link runnerBundlePath}), written to a temporary name and renamed
 * into place so a sandbox never starts a half-written bundle.
 */
import { build } from 'esbuild';
import { renameSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RUNNER_BUNDLE_NAME } from './bundle.js';

/** The package's root (this file is `src/build.ts` or `dist/build.js`). */
function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

/** Where {@link buildRunnerBundle} writes by default: `<package>/dist/runner.cjs`. */
export function runnerBundlePath(): string {
  return join(packageRoot(), 'dist', RUNNER_BUNDLE_NAME);
}

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Builds the bundle.
 * @returns the bundle's path and size in bytes.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would require anything but a Node built-in (the sandbox has
 *   no node_modules).
 */
export async function buildRunnerBundle(outFile: string = runnerBundlePath()): Promise<{ readonly bundle: string; readonly sizeBytes: number }> {
  const bundle = resolve(outFile);
  const temp = `${bundle}.${process.pid}.tmp`;
  const result = await build({
    absWorkingDir: packageRoot(),
    entryPoints: ['src/main.ts'],
    outfile: temp,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs)[0];
  const foreign = (output?.imports ?? []).filter((i) => !BUILTINS.has(i.path)).map((i) => i.path);
  if (foreign.length > 0) throw new Error(`@warren/agent-runner build: the bundle requires ${foreign.join(', ')}, which would not be there in the sandbox`);
  renameSync(temp, bundle);
  return { bundle, sizeBytes: output?.bytes ?? 0 };
}

// Run as a program: `node dist/build.js [outFile]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildRunnerBundle(process.argv[2]).then(
    (r) => console.log(`agent-runner: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB)`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
