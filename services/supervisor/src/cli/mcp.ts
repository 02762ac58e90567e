import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { WarrenError } from '@warren/core';
import { openTokenStore } from '@warren/http';
import { openDatabase } from '@warren/store';
import { secureStateDir } from '../state-dir.js';
import { addPathOptions, configFrom, type PathFlags } from './common.js';

/**
 * The token name `warren mcp` uses: the policy sees `user:local-mcp`, an operator. Not the sign-in
 * link's `local-operator`: each start of `warren up` replaces that one, and replacing it here would
 * sign the browser out.
 */
export const LOCAL_OPERATOR = 'local-mcp';
/** How long the local operator's token lives, ms (12 h); one with less than an hour left is replaced. */
const TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000;
const TOKEN_MARGIN_MS = 60 * 60 * 1000;

/**
 * Where the running supervisor serves HTTP: `<stateDir>/http.json`,
 * `{ "url": "http://127.0.0.1:7070", "pid": 4242 }`, written by `warren up` while it serves the API.
 * @throws {WarrenError} `WARREN_MCP_NO_SERVER` when the file is missing, has no URL, or names a
 *   process that no longer runs (a supervisor that did not stop cleanly).
 */
export function supervisorUrl(stateDir: string): URL {
  const path = join(stateDir, 'http.json');
  if (!existsSync(path)) throw new WarrenError('WARREN_MCP_NO_SERVER', `no supervisor serves HTTP for ${stateDir} (${path} is missing): start one with warren up, or pass --url`);
  let address: { url?: unknown; pid?: unknown };
  try {
    address = JSON.parse(readFileSync(path, 'utf8')) as { url?: unknown; pid?: unknown };
  } catch (error) {
    throw new WarrenError('WARREN_MCP_NO_SERVER', `${path} is not JSON: ${(error as Error).message}`);
  }
  const { url, pid } = address;
  if (typeof url !== 'string' || !URL.canParse(url)) throw new WarrenError('WARREN_MCP_NO_SERVER', `${path} has no 'url'`);
  if (typeof pid === 'number' && Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') throw new WarrenError('WARREN_MCP_NO_SERVER', `no supervisor serves HTTP for ${stateDir}: process ${pid} named in ${path} is gone; start one with warren up`);
    }
  }
  return new URL(url);
}

/**
 * The local operator's token: the one kept in `<stateDir>/mcp-token.json` (mode 0600) while it is
 * live for more than an hour, else a new 12-hour operator token for `local-mcp` (replacing the
 * old one) written there.
 */
export async function localOperatorToken(stateDir: string, nowMs: number): Promise<string> {
  await secureStateDir(stateDir);
  const file = join(stateDir, 'mcp-token.json');
  const db = openDatabase(join(stateDir, 'warren.db'));
  try {
    const tokens = openTokenStore(db);
    if (existsSync(file)) {
      try {
        const kept = JSON.parse(readFileSync(file, 'utf8')) as { token?: unknown };
        if (typeof kept.token === 'string') {
          const identity = tokens.verify(kept.token, nowMs);
          if (identity?.name === LOCAL_OPERATOR && identity.role === 'operator' && identity.expiresMs !== null && identity.expiresMs - nowMs > TOKEN_MARGIN_MS) return kept.token;
        }
      } catch {
        // Not JSON: a new token replaces it.
      }
    }
    const made = tokens.create({ name: LOCAL_OPERATOR, role: 'operator', expiresMs: nowMs + TOKEN_LIFETIME_MS, replace: true }, nowMs);
    writeFileSync(file, JSON.stringify({ token: made.token, expiresMs: made.info.expiresMs }) + '\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    return made.token;
  } finally {
    db.close();
  }
}

/**
 * Adds `warren mcp`: Warren's MCP server on stdin/stdout for a local MCP client (Claude Desktop, an
 * IDE). The caller is the local operator (`user:local-mcp`, role operator); the messages go to
 * the running supervisor's `/mcp`, decided and audited there like any other call.
 */
export function registerMcpCommand(program: Command): void {
  addPathOptions(program.command('mcp').description("serve Warren's MCP tools on stdio (through the running supervisor's /mcp)"))
    .option('--url <url>', "the supervisor's HTTP address (default: from <state dir>/http.json)")
    .action(async (flags: PathFlags & { url?: string }) => {
      const config = configFrom(flags, {});
      let base: URL;
      if (flags.url !== undefined) {
        if (!URL.canParse(flags.url)) throw new WarrenError('WARREN_USAGE', `--url must be a URL (http://127.0.0.1:7070), got ${flags.url}`);
        base = new URL(flags.url);
      } else {
        base = supervisorUrl(config.stateDir);
      }
      const token = await localOperatorToken(config.stateDir, Date.now());
      // Loaded here: every other command would pay for the MCP SDK at start.
      const { bridgeStdioToHttp } = await import('@warren/mcp');
      const bridge = await bridgeStdioToHttp({ url: new URL('/mcp', base), token, onError: (error) => process.stderr.write(`warren mcp: ${error.message}\n`) });
      await bridge.closed;
    });
}
