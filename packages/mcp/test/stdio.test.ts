import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it, onTestFinished } from 'vitest';
import { mcpTestServer } from './support.js';

const WARREN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'services', 'supervisor', 'bin', 'warren.js');

/** `warren mcp` over the test server's state directory (its database holds the tokens), as a stdio client spawns it. */
function spawnBridge(stateDir: string, extra: string[] = []): StdioClientTransport {
  return new StdioClientTransport({ command: process.execPath, args: [WARREN, 'mcp', '--state-dir', stateDir, ...extra], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stderr: 'pipe' });
}

for (const era of ['legacy', '2026-07-28'] as const) {
  describe(`warren mcp over stdio (${era === 'legacy' ? '2025' : era} protocol)`, () => {
    it("the local operator lists and calls tools, reads a resource and gets a prompt through the running supervisor's /mcp", async () => {
      const t = await mcpTestServer();
      writeFileSync(join(t.ports.dir, 'http.json'), JSON.stringify({ url: t.server.url, pid: process.pid }));
      const client = new Client({ name: 'warren-test', version: '1.0.0' }, era === 'legacy' ? {} : { versionNegotiation: { mode: { pin: era } } });
      const transport = spawnBridge(t.ports.dir);
      await client.connect(transport);
      onTestFinished(() => client.close());
      const { tools } = await client.listTools();
      expect(tools.map((x) => x.name)).toContain('run_command');
      const created = await client.callTool({ name: 'create_task', arguments: { title: 'From stdio' } });
      expect(created.structuredContent).toEqual({ id: 'from-stdio', path: 'from-stdio.md' });
      const board = await client.readResource({ uri: 'warren://board' });
      expect(board.contents[0]?.uri).toBe('warren://board');
      const prompt = await client.getPrompt({ name: 'triage_board' });
      expect(prompt.messages).toHaveLength(1);
      // Decided and audited as the local operator.
      const rows = t.ports.registry.auditPage({ filter: { action: 'policy.decide', object: 'mcp:create_task' }, limit: 10 }).rows;
      expect(rows.map((r) => [r.actor, r.decision])).toEqual([['user:local-mcp', 'allow']]);
    });
  });
}

describe('warren mcp without a supervisor', () => {
  it('says no supervisor serves HTTP and exits', async () => {
    const t = await mcpTestServer();
    const { execFile } = await import('node:child_process');
    const result = await new Promise<{ code: number | null; stderr: string }>((done) => {
      execFile(process.execPath, [WARREN, 'mcp', '--state-dir', t.ports.dir], { timeout: 30_000 }, (error, _stdout, stderr) => done({ code: (error as { code?: number } | null)?.code ?? 0, stderr }));
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no supervisor serves HTTP');
    expect(result.stderr).toContain('WARREN_MCP_NO_SERVER');
    // A file left by a supervisor that did not stop cleanly: its process is gone.
    const { spawnSync } = await import('node:child_process');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(t.ports.dir, 'http.json'), JSON.stringify({ url: t.server.url, pid: Number(gone) }));
    const stale = await new Promise<{ code: number | null; stderr: string }>((done) => {
      execFile(process.execPath, [WARREN, 'mcp', '--state-dir', t.ports.dir], { timeout: 30_000 }, (error, _stdout, stderr) => done({ code: (error as { code?: number } | null)?.code ?? 0, stderr }));
    });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(`process ${gone}`);
  });
});
