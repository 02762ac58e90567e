/**
 * The fake LLM server as a process, for trying a board by hand without a provider:
 *
 * ```sh
 * node packages/testing/dist/llm/main.js --script script.json [--port 8788]
 * ```
 *
 * The script file holds a JSON array of turns ({@link FakeTurn}), or an object with `script` (that
 * array) and any of `sideCall`, `apiKey`, `models`, `chunkChars`, `chunkDelayMs` (see
 * {@link StartFakeLlmOptions}). It prints one JSON line `{"event":"listening","url":…}` on stdout,
 * then one line per request as it arrives (`{"event":"request","n","method","path","wire"}`; never
 * headers or bodies), and stops on SIGINT or SIGTERM. Exit code 2 for bad arguments or a bad
 * script file, naming what is wrong.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startFakeLlm } from './server.js';
import type { FakeTurn, StartFakeLlmOptions } from './types.js';

const FILE_KEYS = ['script', 'sideCall', 'apiKey', 'models', 'chunkChars', 'chunkDelayMs'] as const;

/** Reads and checks a script file. @throws {Error} naming the file and what is wrong. */
function readScriptFile(path: string): StartFakeLlmOptions {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`, { cause: error });
  }
  if (Array.isArray(parsed)) return { script: parsed as FakeTurn[] };
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${path}: expected an array of turns or an object with 'script'`);
  const unknown = Object.keys(parsed).filter((key) => !(FILE_KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) throw new Error(`${path}: unknown key(s) ${unknown.join(', ')}; allowed: ${FILE_KEYS.join(', ')}`);
  const options = parsed as StartFakeLlmOptions;
  if (!Array.isArray(options.script)) throw new Error(`${path}: 'script' must be an array of turns`);
  return options;
}

async function main(): Promise<number> {
  let values: { script?: string; port?: string };
  try {
    ({ values } = parseArgs({ options: { script: { type: 'string' }, port: { type: 'string' } }, strict: true }));
  } catch (error) {
    process.stderr.write(`fake-llm: ${(error as Error).message}\nusage: fake-llm --script <file.json> [--port <n>]\n`);
    return 2;
  }
  if (values.script === undefined) {
    process.stderr.write('fake-llm: --script <file.json> is required\nusage: fake-llm --script <file.json> [--port <n>]\n');
    return 2;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`fake-llm: --port must be a port number (0-65535), got ${values.port}\n`);
    return 2;
  }
  let options: StartFakeLlmOptions;
  try {
    options = readScriptFile(values.script);
  } catch (error) {
    process.stderr.write(`fake-llm: ${(error as Error).message}\n`);
    return 2;
  }
  let count = 0;
  const llm = await startFakeLlm({
    ...options,
    port,
    onRequest: (request) => {
      count += 1;
      process.stdout.write(`${JSON.stringify({ event: 'request', n: count, method: request.method, path: request.path, wire: request.wire })}\n`);
    },
  });
  process.stdout.write(`${JSON.stringify({ event: 'listening', url: llm.url })}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => resolve(name));
  });
  await llm.close();
  process.stderr.write(`fake-llm: stopped on ${signal}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fake-llm: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
