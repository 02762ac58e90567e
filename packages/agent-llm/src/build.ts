/**
 * Bundles the program (`src/main.ts` with the `openai` client and the MCP client) with esbuild into
 * one ES module for Node 20 that imports nothing but Node's built-ins, so that it runs in a sandbox
 * with no node_modules. Run by `npm run build` (`node packages/agent-llm/dist/lib/build.js`).
 *
 * Output: {@link agentLlmBundlePath} (`packages/agent-llm/dist/agent-llm.mjs`) unless `outFile` says
 * otherwise; the bundled packages' licence comments are gathered at the end of the file.
 */
import { bundleForNode, packageRootOf, runWhenMain } from '@warren/bundle';
import { agentLlmBundlePath } from './paths.js';

/** Options of {@link buildAgentLlm}. */
export interface BuildAgentLlmOptions {
  /** Where to write the bundle. Default {@link agentLlmBundlePath}. */
  readonly outFile?: string;
  /** Minify (default false: a readable stack trace in the task's log is worth the bytes). */
  readonly minify?: boolean;
}

/** What {@link buildAgentLlm} wrote. */
export interface BuildAgentLlmResult {
  readonly outFile: string;
  /** The bundle's size in bytes. */
  readonly sizeBytes: number;
}

/**
 * Builds the bundle (`@warren/bundle` `bundleForNode`: the workspace packages read from their
 * sources, a `require` for bundled CommonJS code, licence comments at the end).
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in at run time.
 */
export async function buildAgentLlm(options: BuildAgentLlmOptions = {}): Promise<BuildAgentLlmResult> {
  const { bundle, sizeBytes } = await bundleForNode({
    packageRoot: packageRootOf(import.meta.url),
    entryPoint: 'src/main.ts',
    outFile: options.outFile ?? agentLlmBundlePath(),
    format: 'esm',
    what: '@warren/agent-llm build',
    fromSources: true,
    esmRequire: true,
    minify: options.minify ?? false,
    licencesAtEnd: true,
  });
  return { outFile: bundle, sizeBytes };
}

// Run as a program: `node dist/lib/build.js [outFile]`.
runWhenMain(import.meta.url, async () => {
  const r = await buildAgentLlm({ outFile: process.argv[2] });
  return `agent-llm: ${r.outFile} (${Math.round(r.sizeBytes / 1024)} KiB)`;
});
