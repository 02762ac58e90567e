#!/usr/bin/env node
// The `warren` command. Runs the built CLI (npm run build first).
// Board writes sync files in parallel, and libuv's default of 4 threads would queue them; the pool
// is sized when first used, so before anything is imported.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/cli.js');

const code = await main(process.argv);
process.exitCode = code;
// The command is over: a handle something left open (a socket of a failed connection attempt, a
// timer) must not keep the process alive. Once stdout and stderr have handed over everything
// written to them, the exit is forced if the event loop has not drained by then. Children
// (nats-server) were closed by the command; they also die with this process.
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', resolve)));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
setTimeout(() => process.exit(code), 2_000).unref();
