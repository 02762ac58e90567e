/**
 * Bundles the program (`src/main.ts` with the `openai` client and the MCP client) with esbuild into
 * one ES module for Node 20 that imports nothing but Node's built-ins, so that it runs in a sandbox
 * with no node_modules. Run by `npm run build` (`node packages/agent-llm/dist/lib/build.js`).
 *
 * Output: {@link agentLlmBundlePath} (`packages/agent-llm/dist/agent-llm.mjs`) unless `outFile` says
 * otherwise; the bundled packages' licence comments are gathered at the end of the file.
 */
import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

/** The package's root (this file is `src/build.ts` or `dist/lib/build.js`). */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..', '..') : resolve(here, '..');
}

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Builds the bundle.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the import when the bundle would import anything but a Node built-in at run time.
 */
export async function buildAgentLlm(options: BuildAgentLlmOptions = {}): Promise<BuildAgentLlmResult> {
  const root = packageRoot();
  const outFile = resolve(options.outFile ?? agentLlmBundlePath());
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['src/main.ts'],
    outfile: outFile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Read the workspace packages (@warren/core) from their sources, as the type checks do.
    conditions: ['@warren/source'],
    // CommonJS code inside the bundle may `require` Node's built-ins; an ES module has no `require`.
    banner: { js: "import { createRequire as __warrenCreateRequire } from 'node:module';\nconst require = __warrenCreateRequire(import.meta.url);" },
    minify: options.minify ?? false,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs)[0];
  const foreign = (output?.imports ?? []).filter((i) => !BUILTINS.has(i.path)).map((i) => i.path);
  if (foreign.length > 0) throw new Error(`@warren/agent-llm build: the bundle imports ${foreign.join(', ')}, which would not be there in the sandbox`);
  return { outFile, sizeBytes: output?.bytes ?? 0 };
}

// Run as a program: `node dist/lib/build.js [outFile]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildAgentLlm({ outFile: process.argv[2] }).then(
    (r) => console.log(`agent-llm: ${r.outFile} (${Math.round(r.sizeBytes / 1024)} KiB)`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
