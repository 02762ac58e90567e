/**
 * The agent runner's entry point, run inside the sandbox as
 * `node /opt/warren/agent-runner/dist/runner.cjs` (this file bundled by `build.ts`; `dist/main.js`
 * when the bundle was not built). Reads its settings from the environment (see
 * `runnerConfigFromEnv`), serves the agent channel until shutdown, and exits 0 after a shutdown
 * (frame or SIGTERM/SIGINT), 1 when the channel is lost, 2 on invalid settings.
 */
import { runnerConfigFromEnv } from './config.js';
import { runAgent } from './runner.js';

async function main(): Promise<number> {
  let config;
  try {
    config = runnerConfigFromEnv(process.env);
  } catch (error) {
    process.stderr.write(`warren-agent-runner: ${(error as Error).message}\n`);
    return 2;
  }
  const controller = new AbortController();
  process.on('SIGTERM', () => controller.abort());
  process.on('SIGINT', () => controller.abort());
  // Past RLIMIT_FSIZE a write fails with EFBIG instead of killing the runner.
  process.on('SIGXFSZ', () => undefined);
  return runAgent({ ...config, env: process.env, signal: controller.signal });
}

// No top-level await: the same file is bundled as CommonJS (`dist/runner.cjs`, see build.ts).
main().then(
  (code) => {
    process.exitCode = code;
    process.exit();
  },
  (error: unknown) => {
    process.stderr.write(`warren-agent-runner: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
