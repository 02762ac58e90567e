import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { parseDurationMs, WarrenError } from '@warren/core';
import { openTokenStore, TokenRole, type TokenInfo, type TokenStore } from '@warren/http';
import { openDatabase } from '@warren/store';
import type { SupervisorConfig } from '../config.js';
import { secureStateDir } from '../state-dir.js';
import { addPathOptions, configFrom, ExitCode, iso, print, table, type PathFlags } from './common.js';

/**
 * Runs `use` on the token store of the state database of `config`, creating the state directory
 * (private, as `warren up` makes it) and the database when missing, then closes the database.
 */
async function withTokens<T>(config: SupervisorConfig, use: (tokens: TokenStore) => T): Promise<T> {
  await secureStateDir(config.stateDir);
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  try {
    return use(openTokenStore(db));
  } finally {
    db.close();
  }
}

/** A token's state at `nowMs`: `revoked`, `expired` or `live`. */
function tokenState(token: TokenInfo, nowMs: number): 'revoked' | 'expired' | 'live' {
  if (token.revokedMs !== null) return 'revoked';
  if (token.expiresMs !== null && token.expiresMs <= nowMs) return 'expired';
  return 'live';
}

/**
 * Adds `warren token create|list|revoke`: the bearer tokens operators use with the HTTP API and
 * the dashboard. Only a token's SHA-256 is stored; `create` prints the token once.
 */
export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('API tokens for the HTTP API and the dashboard');

  addPathOptions(token.command('create').description('make a token and print it once'))
    .requiredOption('--name <name>', 'who the token is for; the policy sees user:<name>')
    .addOption(new Option('--role <role>', 'what it may do: viewer reads, operator reads and acts').choices(Object.values(TokenRole)).makeOptionMandatory())
    .option('--expires <duration>', 'it stops working after this long (e.g. 12h, 30d); default never')
    .option('--replace', 'revoke a live token of the same name first')
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { name: string; role: TokenRole; expires?: string; replace?: boolean; json?: boolean }) => {
      const config = configFrom(flags, {});
      const nowMs = Date.now();
      let expiresMs: number | undefined;
      if (flags.expires !== undefined) {
        const ms = parseDurationMs(flags.expires, 'option --expires');
        if (ms <= 0) throw new WarrenError('WARREN_USAGE', `--expires must be a duration above zero (e.g. 30d), got ${flags.expires}`);
        expiresMs = nowMs + ms;
      }
      const made = await withTokens(config, (tokens) =>
        tokens.create({ name: flags.name, role: flags.role, ...(expiresMs !== undefined ? { expiresMs } : {}), ...(flags.replace ? { replace: true } : {}) }, nowMs),
      );
      print(flags.json ?? false, { token: made.token, ...made.info }, () =>
        `${made.token}\n` +
        `token '${made.info.name}' (${made.info.role}) ${made.info.expiresMs === null ? 'does not expire' : `expires ${iso(made.info.expiresMs)}`}; it is shown only now\n`,
      );
    });

  addPathOptions(token.command('list').description('list tokens (never their secrets)'))
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const nowMs = Date.now();
      const list = await withTokens(config, (tokens) => tokens.list());
      print(flags.json ?? false, list.map((t) => ({ ...t, state: tokenState(t, nowMs) })), () =>
        list.length === 0
          ? 'no tokens: warren token create --name <name> --role operator|viewer\n'
          : table([
              ['NAME', 'ROLE', 'STATE', 'CREATED', 'EXPIRES', 'LAST USED'],
              ...list.map((t) => [t.name, t.role, tokenState(t, nowMs), iso(t.createdMs), iso(t.expiresMs), iso(t.lastUsedMs)]),
            ]),
      );
    });

  addPathOptions(token.command('revoke').description('revoke the live token with this name and end its sessions'))
    .argument('<name>', 'the token name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const revoked = await withTokens(config, (tokens) => tokens.revoke(name, Date.now()));
      if (!revoked) {
        process.stderr.write(`warren: no live token named '${name}' (warren token list)\n`);
        process.exitCode = ExitCode.failed;
        return;
      }
      print(flags.json ?? false, revoked, () => `revoked token '${name}'\n`);
    });
}
