import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// The lint configuration (eslint.config.js with tsconfig.eslint.json) keeps its promise rules on
// and reaches files of packages, services and test folders added after it was written.
const repo = join(import.meta.dirname, '..');

const PROBE = [
  'async function work(): Promise<void> {}',
  'export function start(): void {',
  '  work();',
  '  void work();',
  '  setTimeout(work, 10);',
  '  work().catch(() => undefined);',
  '}',
  '',
].join('\n');

describe('lint configuration', () => {
  it('reports floating, voided and misused promises in files of folders added later', { timeout: 180_000 }, async () => {
    // Removed at the end; named so that vitest never takes them for tests and git ignores them.
    const name = `lint-probe-${process.pid}`;
    const made = [join(repo, 'packages', name), join(repo, 'services', name), join(repo, 'test', name)];
    const files = [
      join(repo, 'packages', name, 'src', 'probe.ts'),
      join(repo, 'packages', name, 'test', 'probe.ts'),
      join(repo, 'services', name, 'src', 'probe.ts'),
      join(repo, 'test', name, 'probe.ts'),
    ];
    try {
      for (const file of files) {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, PROBE);
      }
      const results = await new ESLint({ cwd: repo }).lintFiles(files);
      expect(results.map((r) => r.filePath).sort()).toEqual([...files].sort());
      for (const result of results) {
        expect(
          result.messages.map((m) => ({ line: m.line, rule: m.ruleId, severity: m.severity })),
          result.filePath,
        ).toEqual([
          { line: 3, rule: '@typescript-eslint/no-floating-promises', severity: 2 },
          { line: 4, rule: '@typescript-eslint/no-floating-promises', severity: 2 },
          { line: 5, rule: '@typescript-eslint/no-misused-promises', severity: 2 },
        ]);
      }
    } finally {
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    }
  });
});
