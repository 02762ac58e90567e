import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { repo, requireMachine } from './support/cli.js';

const out = mkdtempSync(join(tmpdir(), 'warren-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

// A smoke run of `npm run bench -- --quick`: it must complete and write its results. No timing is
// asserted here; the numbers themselves are read from the results files.
it('runs the quick benchmark suite to the end and writes its results file', async () => {
  requireMachine();
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [join(repo, 'bench', 'dist', 'run.js'), '--quick', '--out', out], { cwd: repo });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The quick suite takes 2–4 minutes on an idle machine and several times that beside the rest of
    // the tests on 2 cores; the bound only stops a run that hangs.
    const timer = setTimeout(() => child.kill('SIGKILL'), 900_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  expect(result.code, result.stderr.slice(-3000)).toBe(0);
  const [jsonPath, mdPath] = result.stdout.trim().split('\n').slice(-2);
  expect(existsSync(jsonPath!), jsonPath).toBe(true);
  expect(existsSync(mdPath!), mdPath).toBe(true);
  const results = JSON.parse(readFileSync(jsonPath!, 'utf8')) as { machine?: unknown };
  expect(results.machine).toBeDefined();
}, 960_000);
