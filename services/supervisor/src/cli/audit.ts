import { Option, type Command } from 'commander';
import type { AuditRecord } from '@warren/audit';
import { parseDurationMs, WarrenError } from '@warren/core';
import { addPathOptions, configFrom, ExitCode, iso, print, table, withRegistry, type PathFlags } from './common.js';

/** Adds `warren audit`: list and filter the audit trail (a page of the registry's audit query), or verify its chain. */
export function registerAuditCommand(program: Command): void {
  addPathOptions(program.command('audit').description('list and filter the audit trail'))
    .option('--json', 'print JSON')
    .option('--actor <actor>', 'only rows by this actor (e.g. supervisor, agent:shell-1)')
    .option('--action <action>', "only this action, or a prefix ending in '.*' (e.g. task.*)")
    .option('--object <object>', 'only rows about this object (e.g. task:count-lines)')
    .addOption(new Option('--decision <decision>', 'only policy decisions with this outcome').choices(['allow', 'deny']))
    .option('--since <duration>', 'only rows newer than this (e.g. 10m, 2h)')
    .option('--limit <n>', 'at most this many rows, newest last', '1000')
    .option('--verify', 'check the hash chain instead of listing')
    .action((flags: PathFlags & { json?: boolean; actor?: string; action?: string; object?: string; decision?: 'allow' | 'deny'; since?: string; limit: string; verify?: boolean }) => {
      const config = configFrom(flags, {});
      withRegistry(config, (registry) => {
        if (flags.verify) {
          const result = registry.verifyAudit();
          print(flags.json ?? false, result, () =>
            result.ok ? `ok: ${result.rows} rows, hash chain intact\n` : `BROKEN at seq ${result.firstBadSeq}: ${result.reason}\n`,
          );
          if (!result.ok) process.exitCode = ExitCode.failed;
          return;
        }
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit <= 0) throw new WarrenError('WARREN_USAGE', `--limit must be a positive whole number, got ${flags.limit}`);
        const { rows } = registry.auditPage({
          filter: {
            ...(flags.actor ? { actor: flags.actor } : {}),
            ...(flags.action ? { action: flags.action } : {}),
            ...(flags.object ? { object: flags.object } : {}),
            ...(flags.decision ? { decision: flags.decision } : {}),
            ...(flags.since ? { sinceMs: Date.now() - parseDurationMs(flags.since, 'option --since') } : {}),
          },
          limit,
          newest: true,
        });
        print(flags.json ?? false, rows, () =>
          table([
            ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'OBJECT', 'DECISION', 'DETAILS'],
            ...rows.map((r: AuditRecord) => [String(r.seq), iso(r.timeMs), r.actor, r.action, r.object, r.decision ?? '-', JSON.stringify(r.details ?? {})]),
          ]),
        );
      });
    });
}
