/**
 * Bundles `warren-pod-agent` (`src/pod-agent/entry.ts`) with esbuild into one ES module for Node 20
 * that imports nothing but Node's built-ins, so that an agent image needs only Node, this file and
 * the agent runner. Run by `npm run build` (`node packages/kube/dist/build.js [outFile]`).
 * Output: {@link podAgentBundlePath} unless a path is given.
 */
import { builtinModules } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { podAgentBundlePath } from './bundle-path.js';

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Builds the bundle.
 * @returns its path and size in bytes.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in.
 */
export async function buildPodAgent(outFile = podAgentBundlePath()): Promise<{ bundle: string; sizeBytes: number }> {
  const here = dirname(fileURLToPath(import.meta.url));
  const result = await build({
    absWorkingDir: resolve(here, '..'),
    entryPoints: ['src/pod-agent/entry.ts'],
    outfile: outFile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['@warren/source'],
    // Bundled CommonJS dependencies call require() for built-ins: give the module one.
    banner: { js: "import { createRequire as __warrenCreateRequire } from 'node:module'; const require = __warrenCreateRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs)[0];
  const foreign = (output?.imports ?? []).filter((i) => !BUILTINS.has(i.path)).map((i) => i.path);
  if (foreign.length > 0) throw new Error(`@warren/kube build: the pod agent bundle imports ${foreign.join(', ')}, which an image would not have`);
  return { bundle: outFile, sizeBytes: output?.bytes ?? 0 };
}

// Run as a program: `node dist/build.js [outFile]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildPodAgent(process.argv[2]).then(
    (r) => console.log(`kube: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB)`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
