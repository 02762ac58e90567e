import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { auditSigningPaths, keyFingerprint, readVerifyingKey, verifyAuditTrail, type AuditRecord, type SignedVerification } from '@warren/audit';
import { parseDurationMs, WarrenError } from '@warren/core';
import type { AuditPageFilter } from '@warren/registry';
import { addPathOptions, configFrom, ExitCode, iso, openStateRegistry, print, table, withRegistry, type PathFlags } from './common.js';

/** The flags of `warren audit` and its subcommands. Commander gives the options `audit` itself declares to `audit`, wherever they stand, so subcommands read them merged. */
interface AuditFlags extends Omit<PathFlags, 'format'> {
  json?: boolean;
  actor?: string;
  action?: string;
  object?: string;
  decision?: 'allow' | 'deny';
  since?: string;
  limit: string;
  verify?: boolean;
  key?: string;
  format?: string;
}

/** Rows per page when exporting: each page is written out before the next is read. */
const EXPORT_PAGE_ROWS = 1000;

/**
 * Adds `warren audit` (list and filter the audit trail), `warren audit verify` (the hash chain and
 * its signed checkpoints; `warren audit --verify` is the same), `warren audit export` (every
 * matching row as JSON Lines on stdout) and `warren audit key` (the signing key's public half).
 */
export function registerAuditCommand(program: Command): void {
  const audit = addPathOptions(program.command('audit').description('list and filter the audit trail; verify or export it'))
    .option('--json', 'print JSON')
    .option('--actor <actor>', 'only rows by this actor (e.g. supervisor, agent:shell-1)')
    .option('--action <action>', "only this action, or a prefix ending in '.*' (e.g. task.*)")
    .option('--object <object>', 'only rows about this object (e.g. task:count-lines)')
    .addOption(new Option('--decision <decision>', 'only policy decisions with this outcome').choices(['allow', 'deny']))
    .option('--since <time>', 'only rows newer than this: a duration (10m, 2h) or an ISO 8601 time')
    .option('--limit <n>', 'at most this many rows, newest last', '1000')
    .option('--verify', "check the trail instead of listing (as 'warren audit verify')")
    .option('--key <path>', 'with --verify: as for verify')
    .action((flags: AuditFlags) => {
      if (flags.verify) {
        verifyCommand(flags);
        return;
      }
      listCommand(flags);
    });

  addPathOptions(audit.command('verify').description('check the hash chain, the signed checkpoints and the head file; exit 1 naming the first bad row'))
    .option('--json', 'print JSON')
    .option('--key <path>', 'the key to check signatures with: a PEM public key kept elsewhere, or the private key (default: <state-dir>/audit-signing.key)')
    .action((_flags: unknown, command: Command) => {
      verifyCommand(command.optsWithGlobals<AuditFlags>());
    });

  addPathOptions(audit.command('export').description('write every matching row to stdout, one JSON object per line'))
    .addOption(new Option('--format <format>', 'the output format').choices(['jsonl']).default('jsonl'))
    .option('--actor <actor>', 'only rows by this actor')
    .option('--action <action>', "only this action, or a prefix ending in '.*'")
    .option('--object <object>', 'only rows about this object')
    .addOption(new Option('--decision <decision>', 'only policy decisions with this outcome').choices(['allow', 'deny']))
    .option('--since <time>', 'only rows newer than this: a duration (10m, 2h) or an ISO 8601 time')
    .action(async (_flags: unknown, command: Command) => {
      await exportCommand(command.optsWithGlobals<AuditFlags>());
    });

  addPathOptions(audit.command('key').description("print the signing key's fingerprint and public key (PEM), to keep elsewhere for 'verify --key'"))
    .option('--key <path>', 'the private key (default: <state-dir>/audit-signing.key)')
    .action((_flags: unknown, command: Command) => {
      const flags = command.optsWithGlobals<AuditFlags>();
      const keyPath = flags.key ?? auditSigningPaths(configOf(flags).stateDir).keyPath;
      if (!existsSync(keyPath)) throw new WarrenError('WARREN_NO_STATE', `no audit signing key at ${keyPath} yet: 'warren up' or 'warren run' makes it`);
      const publicKey = readVerifyingKey(keyPath);
      process.stdout.write(`# key ${keyFingerprint(publicKey)}\n${publicKey.export({ type: 'spki', format: 'pem' }).toString()}`);
    });
}

/** The supervisor configuration for the path flags (`--format` here is the export format, not the board's). */
function configOf(flags: AuditFlags) {
  const { format: _format, ...paths } = flags;
  return configFrom(paths, {});
}

function listCommand(flags: AuditFlags): void {
  withRegistry(configOf(flags), (registry) => {
    const limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit <= 0) throw new WarrenError('WARREN_USAGE', `--limit must be a positive whole number, got ${flags.limit}`);
    const { rows } = registry.auditPage({ filter: filterOf(flags), limit, newest: true });
    print(flags.json ?? false, rows, () =>
      table([
        ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'OBJECT', 'DECISION', 'DETAILS'],
        ...rows.map((r: AuditRecord) => [String(r.seq), iso(r.timeMs), r.actor, r.action, r.object, r.decision ?? '-', JSON.stringify(r.details ?? {})]),
      ]),
    );
  });
}

/** `warren audit verify`: prints the outcome of `verifyAuditTrail` and sets exit code 1 when the trail does not verify. */
function verifyCommand(flags: AuditFlags): void {
  const config = configOf(flags);
  const { keyPath, headPath } = auditSigningPaths(config.stateDir);
  if (flags.key !== undefined && !existsSync(flags.key)) throw new WarrenError('WARREN_USAGE', `--key ${flags.key}: no such file`);
  withRegistry(config, (registry) => {
    const result = verifyAuditTrail(registry.db, { keyPath: flags.key ?? keyPath, headPath });
    print(flags.json ?? false, result, () => verificationText(result, flags.key ?? keyPath));
    if (!result.ok) process.exitCode = ExitCode.failed;
  });
}

/** The one line `warren audit verify` prints for `result`. */
function verificationText(result: SignedVerification, keyPath: string): string {
  if (!result.ok) return result.firstBadSeq !== undefined ? `BROKEN at seq ${result.firstBadSeq}: ${result.reason}\n` : `BROKEN: ${result.reason}\n`;
  if (!result.signed) {
    return `ok: ${result.rows} rows, hash chain intact; unsigned (no signing key at ${keyPath}): cutting the newest rows cannot be detected\n`;
  }
  const { count, lastSeq, lastMs } = result.checkpoints;
  const newest = lastSeq === null ? '' : ` (newest: seq ${lastSeq} at ${iso(lastMs)})`;
  return `ok: ${result.rows} rows, hash chain intact, ${count} signed checkpoint${count === 1 ? '' : 's'}${newest}; ${result.unsignedRows} newer row${result.unsignedRows === 1 ? '' : 's'} protected by the chain only; key ${result.keyId}\n`;
}

/**
 * `warren audit export`: every row matching the filters, oldest first, one JSON object per line
 * (`seq`, `timeMs`, `actor`, `action`, `object`, `decision`, `details`, `prevHash`, `hash`; `decision`
 * and `details` null when absent). Reads a page of rows at a time and waits for stdout to drain
 * before the next, so a trail of any length is streamed. Stops quietly when the reader goes away (EPIPE).
 */
async function exportCommand(flags: AuditFlags): Promise<void> {
  const filter = filterOf(flags);
  const registry = openStateRegistry(configOf(flags));
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  process.stdout.on('error', onError);
  try {
    let after = 0;
    for (;;) {
      const page = registry.auditPage({ after, limit: EXPORT_PAGE_ROWS, filter });
      let chunk = '';
      for (const r of page.rows) {
        chunk += `${JSON.stringify({ seq: r.seq, timeMs: r.timeMs, actor: r.actor, action: r.action, object: r.object, decision: r.decision, details: r.details ?? null, prevHash: r.prevHash, hash: r.hash })}\n`;
      }
      if (chunk.length > 0 && !process.stdout.write(chunk)) await drained(process.stdout);
      if (broken || !page.more) break;
      after = page.next;
    }
  } finally {
    process.stdout.off('error', onError);
    registry.db.close();
  }
  if (broken && (broken as NodeJS.ErrnoException).code !== 'EPIPE') throw broken;
}

/** Resolves when `stream` has room again (`drain`), or will never have (`close`, `error`); leaves no listener behind. */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** The registry filter of the list and export flags. @throws {WarrenError} `WARREN_USAGE` for a bad `--since`. */
function filterOf(flags: AuditFlags): AuditPageFilter {
  return {
    ...(flags.actor ? { actor: flags.actor } : {}),
    ...(flags.action ? { action: flags.action } : {}),
    ...(flags.object ? { object: flags.object } : {}),
    ...(flags.decision ? { decision: flags.decision } : {}),
    ...(flags.since ? { sinceMs: sinceMs(flags.since) } : {}),
  };
}

/** `--since` as ms since the epoch: now minus a duration (`10m`), or an ISO 8601 time (`2026-12-01T08:00:00Z`). */
function sinceMs(value: string): number {
  if (/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$/.test(value)) return Date.now() - parseDurationMs(value, 'option --since');
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms)) {
    throw new WarrenError('WARREN_USAGE', `--since ${value}: not a duration (10m, 2h) or an ISO 8601 time (2026-12-01T08:00:00Z)`);
  }
  return ms;
}
