/**
 * Bundles the `warren-bus` program (`src/warren-bus.ts`) with esbuild into one ES module for Node 20
 * that imports nothing but Node's built-ins, and writes the `bin/warren-bus` shell wrapper beside
 * it, so that the directory works bound read-only at `/opt/warren/agent-sdk` in a sandbox with no
 * node_modules. Run by `npm run build` (`node packages/agent-sdk/dist/lib/build.js`).
 *
 * Output: `<outDir>/warren-bus.mjs` and `<outDir>/bin/warren-bus` (mode 0755), `outDir` default
 * {@link agentSdkDistDir} (`packages/agent-sdk/dist`).
 */
import { bundleForNode, packageRootOf, runWhenMain } from '@warren/bundle';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AGENT_SDK_DIR_IN_SANDBOX, agentSdkDistDir, WARREN_BUS_BUNDLE_NAME } from './paths.js';

/** Options of {@link buildAgentSdk}. */
export interface BuildAgentSdkOptions {
  /** Where to write. Default {@link agentSdkDistDir}. */
  readonly outDir?: string;
  /** The directory the wrapper runs the bundle from. Default {@link AGENT_SDK_DIR_IN_SANDBOX}. */
  readonly runFrom?: string;
}

/** What {@link buildAgentSdk} wrote. */
export interface BuildAgentSdkResult {
  /** The bundle. */
  readonly bundle: string;
  /** The shell wrapper. */
  readonly wrapper: string;
  /** The bundle's size in bytes. */
  readonly sizeBytes: number;
}

/**
 * Builds the bundle (`@warren/bundle` `bundleForNode`) and the wrapper.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in.
 */
export async function buildAgentSdk(options: BuildAgentSdkOptions = {}): Promise<BuildAgentSdkResult> {
  const outDir = resolve(options.outDir ?? agentSdkDistDir());
  mkdirSync(outDir, { recursive: true });
  const { bundle, sizeBytes } = await bundleForNode({
    packageRoot: packageRootOf(import.meta.url),
    entryPoint: 'src/warren-bus.ts',
    outFile: join(outDir, WARREN_BUS_BUNDLE_NAME),
    format: 'esm',
    what: '@warren/agent-sdk build',
  });
  const wrapper = join(outDir, 'bin', 'warren-bus');
  mkdirSync(dirname(wrapper), { recursive: true });
  const runFrom = options.runFrom ?? AGENT_SDK_DIR_IN_SANDBOX;
  writeFileSync(wrapper, `#!/bin/sh\nexec /usr/bin/node '${runFrom.replace(/'/g, `'\\''`)}/${WARREN_BUS_BUNDLE_NAME}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  return { bundle, wrapper, sizeBytes };
}

// Run as a program: `node dist/lib/build.js [outDir]`.
runWhenMain(import.meta.url, async () => {
  const r = await buildAgentSdk(process.argv[2] !== undefined ? { outDir: process.argv[2] } : {});
  return `agent-sdk: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB), ${r.wrapper}`;
});
