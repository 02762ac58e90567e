#!/usr/bin/env node
// The `warren` command. Runs the built CLI (npm run build first).
// Board writes sync files in parallel, and libuv's default of 4 threads would queue them; the pool
// is sized when first used, so before anything is imported.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/cli.js');

process.exitCode = await main(process.argv);
