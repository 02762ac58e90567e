/**
 * Bundles the runner's entry point (`src/main.ts`) with esbuild into one CommonJS file for Node 20,
 * `dist/runner.cjs`, that requires nothing but Node's built-ins. The sandbox starts it instead of
 * the module graph under `dist/` (`node /opt/warren/agent-runner/dist/runner.cjs`): one file read
 * and compiled, no ES module resolution, which takes about 20 ms of CPU off every runner start
 * (measured in bench/results/2026-12-07-vm-sandbox.md). Run by `npm run build`
 * (`node packages/agent-runner/dist/build.js [outFile]`).
 *
 * Output: `<outFile>` (default {@link runnerBundlePath}), written to a temporary name and renamed
 * into place so a sandbox never starts a half-written bundle; next to it, a copy of the
 * `@warren/spawn` addon (`warren_spawn.node`, which the bundled `@warren/spawn` looks for beside the
 * bundle: the sandbox binds only the runner's package directory), or no such file when the addon
 * is not built (the runner then starts tasks with child_process).
 */
import { bundleForNode, packageRootOf, runWhenMain, type NodeBundle } from '@warren/bundle';
import { SPAWN_ADDON_NAME, spawnAddonPath } from '@warren/spawn';
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RUNNER_BUNDLE_NAME } from './bundle.js';

/** Where {@link buildRunnerBundle} writes by default: `<package>/dist/runner.cjs`. */
export function runnerBundlePath(): string {
  return join(packageRootOf(import.meta.url), 'dist', RUNNER_BUNDLE_NAME);
}

/**
 * Builds the bundle (CommonJS; `@warren/bundle` `bundleForNode`).
 * @returns the bundle's path and size in bytes (the addon copied beside it is not counted).
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would require anything but a Node built-in (the sandbox has
 *   no node_modules).
 */
export async function buildRunnerBundle(outFile: string = runnerBundlePath()): Promise<NodeBundle> {
  const built = await bundleForNode({ packageRoot: packageRootOf(import.meta.url), entryPoint: 'src/main.ts', outFile, format: 'cjs', what: '@warren/agent-runner build' });
  const addon = spawnAddonPath();
  const target = join(dirname(built.bundle), SPAWN_ADDON_NAME);
  if (addon === undefined) {
    rmSync(target, { force: true });
  } else if (addon !== target) {
    // Renamed into place: a runner that has the old file mapped keeps it.
    const temp = `${target}.${process.pid}.tmp`;
    copyFileSync(addon, temp);
    renameSync(temp, target);
  }
  return built;
}

// Run as a program: `node dist/build.js [outFile]`.
runWhenMain(import.meta.url, async () => {
  const r = await buildRunnerBundle(process.argv[2]);
  return `agent-runner: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB)`;
});
