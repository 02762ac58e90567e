import { defineConfig } from 'vitest/config';

// Tests read package sources through the `@warren/source` export condition; the end-to-end
// suites in test/ run the built CLI (`npm run build` first, as `npm test` does).
//
// Test files run one at a time: the end-to-end and sandbox suites start real supervisors whose
// agents take uids from one host-wide range and whose sandboxes hold cgroups, so running them side
// by side would make them see each other's processes. The machine has two cores; the suites are
// I/O bound; the whole run stays within a few minutes.
export default defineConfig({
  resolve: { conditions: ['@warren/source'] },
  ssr: { resolve: { conditions: ['@warren/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    // `warren up` serves the HTTP API on 127.0.0.1:7070 by default; suites that run supervisors side
    // by side turn it off, and the HTTP suites ask for a free port with `--http 127.0.0.1:0`.
    env: { WARREN_HTTP: 'off' },
  },
});
