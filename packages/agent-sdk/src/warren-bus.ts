/**
 * The `warren-bus` program (bundled as `dist/warren-bus.mjs`, run in the sandbox as
 * `node /opt/warren/agent-sdk/warren-bus.mjs`, or through the `warren-bus` wrapper on the task's PATH).
 * See {@link runCli} for the commands and exit codes.
 */
import { runCli } from './cli.js';

const interrupt = new AbortController();
process.once('SIGINT', () => interrupt.abort());
process.once('SIGTERM', () => interrupt.abort());

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  signal: interrupt.signal,
}).then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`warren-bus: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
