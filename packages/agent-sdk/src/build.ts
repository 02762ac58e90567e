/**
 * Bundles the `warren-bus` program (`src/warren-bus.ts`) with esbuild into one ES module for Node 20
 * that imports nothing but Node's built-ins, and writes the `bin/warren-bus` shell wrapper beside
 * it, so that the directory works bound read-only at `/opt/warren/agent-sdk` in a sandbox with no
 * node_modules. Run by `npm run build` (`node packages/agent-sdk/dist/lib/build.js`).
 *
 * Output: `<outDir>/warren-bus.mjs` and `<outDir>/bin/warren-bus` (mode 0755), `outDir` default
 * {@link agentSdkDistDir} (`packages/agent-sdk/dist`).
 */
import { build } from 'esbuild';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

/** The package's root (this file is `src/build.ts` or `dist/lib/build.js`). */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..', '..') : resolve(here, '..');
}

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Builds the bundle and the wrapper.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in.
 */
export async function buildAgentSdk(options: BuildAgentSdkOptions = {}): Promise<BuildAgentSdkResult> {
  const outDir = resolve(options.outDir ?? agentSdkDistDir());
  const bundle = join(outDir, WARREN_BUS_BUNDLE_NAME);
  const result = await build({
    absWorkingDir: packageRoot(),
    entryPoints: ['src/warren-bus.ts'],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs)[0];
  const foreign = (output?.imports ?? []).filter((i) => !BUILTINS.has(i.path)).map((i) => i.path);
  if (foreign.length > 0) throw new Error(`@warren/agent-sdk build: the bundle imports ${foreign.join(', ')}, which would not be there in the sandbox`);
  const wrapper = join(outDir, 'bin', 'warren-bus');
  mkdirSync(dirname(wrapper), { recursive: true });
  const runFrom = options.runFrom ?? AGENT_SDK_DIR_IN_SANDBOX;
  writeFileSync(wrapper, `#!/bin/sh\nexec /usr/bin/node '${runFrom.replace(/'/g, `'\\''`)}/${WARREN_BUS_BUNDLE_NAME}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  return { bundle, wrapper, sizeBytes: output?.bytes ?? 0 };
}

// Run as a program: `node dist/lib/build.js [outDir]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildAgentSdk(process.argv[2] !== undefined ? { outDir: process.argv[2] } : {}).then(
    (r) => console.log(`agent-sdk: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB), ${r.wrapper}`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
