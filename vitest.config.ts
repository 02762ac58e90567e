import { defineConfig } from 'vitest/config';

// Tests read package sources through the `@warren/source` export condition; the end-to-end
// suites in test/ run the built CLI (`npm run build` first, as `npm test` does).
export default defineConfig({
  resolve: { conditions: ['@warren/source'] },
  ssr: { resolve: { conditions: ['@warren/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
