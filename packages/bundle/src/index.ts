/**
 * @warren/bundle: the one way Warren's build scripts bundle a program with esbuild for Node 20 into
 * a single file that needs nothing but Node's built-ins (the agent runner, `warren-bus`, the LLM
 * agent, `warren-pod-agent`), so it runs in a sandbox or an image with no node_modules.
 *
 * ```ts
 * import { bundleForNode, packageRootOf, runWhenMain } from '@warren/bundle';
 * export const buildIt = (outFile: string) =>
 *   bundleForNode({ packageRoot: packageRootOf(import.meta.url), entryPoint: 'src/main.ts', outFile, format: 'esm', what: '@warren/x build' });
 * runWhenMain(import.meta.url, async () => `x: ${(await buildIt('dist/x.mjs')).bundle}`);
 * ```
 */
import { build } from 'esbuild';
import { renameSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Options of {@link bundleForNode}. */
export interface NodeBundleOptions {
  /** The package whose sources are bundled: esbuild's working directory. */
  readonly packageRoot: string;
  /** The entry point, relative to `packageRoot` (such as `src/main.ts`). */
  readonly entryPoint: string;
  /** Where to write the bundle (resolved against the current directory). */
  readonly outFile: string;
  /** `esm` (an ES module, `.mjs`) or `cjs` (CommonJS, `.cjs`). */
  readonly format: 'esm' | 'cjs';
  /** Names the build in its errors, such as `@warren/kube build: the pod agent bundle`. */
  readonly what: string;
  /** Where the bundle runs, for the error about a foreign import. Default `in the sandbox`. */
  readonly runsWhere?: string;
  /** Read the workspace packages from their sources (the `@warren/source` export condition), as the type checks do. Default false. */
  readonly fromSources?: boolean;
  /**
   * Give an ES module bundle a `require` (from `createRequire(import.meta.url)`), for bundled
   * CommonJS code that requires Node's built-ins; an ES module has none. Default false.
   */
  readonly esmRequire?: boolean;
  /** Minify. Default false: a readable stack trace in a task's log is worth the bytes. */
  readonly minify?: boolean;
  /** Gather the bundled packages' licence comments at the end of the file. Default false (esbuild's default). */
  readonly licencesAtEnd?: boolean;
}

/** What {@link bundleForNode} wrote. */
export interface NodeBundle {
  /** The bundle's absolute path. */
  readonly bundle: string;
  /** Its size in bytes. */
  readonly sizeBytes: number;
}

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Bundles `entryPoint` for Node 20 (`platform: 'node'`, `target: 'node20'`) into `outFile`. The
 * bundle is written to `<outFile>.<pid>.tmp` and renamed into place, so a reader never sees a
 * half-written file.
 * @throws esbuild's error (naming the file and line) when a source does not compile, or an Error
 *   naming the imports when the bundle would import anything but a Node built-in (it is then not
 *   written).
 */
export async function bundleForNode(options: NodeBundleOptions): Promise<NodeBundle> {
  const bundle = resolve(options.outFile);
  const temp = `${bundle}.${process.pid}.tmp`;
  const result = await build({
    absWorkingDir: options.packageRoot,
    entryPoints: [options.entryPoint],
    outfile: temp,
    bundle: true,
    format: options.format,
    platform: 'node',
    target: 'node20',
    ...(options.fromSources === true ? { conditions: ['@warren/source'] } : {}),
    ...(options.esmRequire === true
      ? { banner: { js: "import { createRequire as __warrenCreateRequire } from 'node:module';\nconst require = __warrenCreateRequire(import.meta.url);" } }
      : {}),
    minify: options.minify ?? false,
    ...(options.licencesAtEnd === true ? { legalComments: 'eof' as const } : {}),
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs)[0];
  const foreign = (output?.imports ?? []).filter((i) => !BUILTINS.has(i.path)).map((i) => i.path);
  if (foreign.length > 0) {
    rmSync(temp, { force: true });
    throw new Error(`${options.what}: the bundle imports ${foreign.join(', ')}, which would not be there ${options.runsWhere ?? 'in the sandbox'}`);
  }
  renameSync(temp, bundle);
  return { bundle, sizeBytes: output?.bytes ?? 0 };
}

/**
 * The root of the package a build script belongs to, from the script's `import.meta.url`: the
 * script is `<root>/src/build.ts`, `<root>/dist/build.js` or `<root>/dist/lib/build.js`.
 */
export function packageRootOf(importMetaUrl: string): string {
  const here = dirname(fileURLToPath(importMetaUrl));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..', '..') : resolve(here, '..');
}

/**
 * Runs `build` when the module of `importMetaUrl` is the program Node was started with (`node
 * dist/build.js …`), printing the line it returns; a failure prints its message and sets exit
 * code 1.
 */
export function runWhenMain(importMetaUrl: string, build: () => Promise<string>): void {
  if (process.argv[1] === undefined || importMetaUrl !== pathToFileURL(process.argv[1]).href) return;
  build().then(
    (line) => console.log(line),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
