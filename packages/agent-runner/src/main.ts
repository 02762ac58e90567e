/**
 * The agent runner's entry point, run inside the sandbox as
 * `node /opt/warren/agent-runner/dist/main.js`. Reads its settings from the environment (see
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

process.exitCode = await main();
process.exit();
