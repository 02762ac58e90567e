/**
 * Bundles `warren-pod-agent` (`src/pod-agent/entry.ts`) with esbuild into one ES module for Node 20
 * that imports nothing but Node's built-ins, so that an agent image needs only Node, this file and
 * the agent runner. Run by `npm run build` (`node packages/kube/dist/build.js [outFile]`).
 * Output: {@link podAgentBundlePath} unless a path is given.
 */
import { bundleForNode, packageRootOf, runWhenMain, type NodeBundle } from '@warren/bundle';
import { podAgentBundlePath } from './bundle-path.js';

/**
 * Builds the bundle (`@warren/bundle` `bundleForNode`: the workspace packages read from their
 * sources, a `require` for bundled CommonJS dependencies).
 * @returns its path and size in bytes.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in.
 */
export function buildPodAgent(outFile = podAgentBundlePath()): Promise<NodeBundle> {
  return bundleForNode({
    packageRoot: packageRootOf(import.meta.url),
    entryPoint: 'src/pod-agent/entry.ts',
    outFile,
    format: 'esm',
    what: '@warren/kube build: the pod agent',
    runsWhere: 'in an agent image',
    fromSources: true,
    esmRequire: true,
  });
}

// Run as a program: `node dist/build.js [outFile]`.
runWhenMain(import.meta.url, async () => {
  const r = await buildPodAgent(process.argv[2]);
  return `kube: ${r.bundle} (${Math.round(r.sizeBytes / 1024)} KiB)`;
});
