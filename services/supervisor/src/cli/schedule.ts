import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ScheduleLedger } from '@warren/registry';
import { openDatabase } from '@warren/store';
import { SCHEDULES_FILE } from '../schedules/schedule-file.js';
import { scheduleList, type ScheduleList } from '../schedules/listing.js';

export type { ScheduleList, ScheduleListing } from '../schedules/listing.js';
import { addPathOptions, configFrom, ExitCode, iso, print, table, type PathFlags } from './common.js';

/**
 * The schedules of the board folder `boardDir` at `nowMs`, with their last runs from the state
 * database `dbPath` when it exists (opened and closed here). See {@link scheduleList}.
 */
export function listSchedules(boardDir: string, dbPath: string, nowMs: number): ScheduleList {
  const db = existsSync(dbPath) ? openDatabase(dbPath) : undefined;
  try {
    return scheduleList(boardDir, db === undefined ? undefined : new ScheduleLedger(db), nowMs);
  } finally {
    db?.close();
  }
}

/** Adds `warren schedule list`: the board's schedules with their last and next fire times. */
export function registerScheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description(`the board's schedules (${SCHEDULES_FILE} in the board folder)`);
  addPathOptions(schedule.command('list').description('each schedule with its last and next fire time and the last task written'))
    .option('--json', 'print JSON')
    .action((flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const list = listSchedules(config.boardDir, join(config.stateDir, 'warren.db'), Date.now());
      print(flags.json ?? false, list, () => {
        const rows = [['NAME', 'CRON', 'TIMEZONE', 'LAST FIRE', 'LAST TASK', 'NEXT FIRE']];
        for (const s of list.schedules) rows.push([s.name, s.cron, s.timezone ?? 'UTC', iso(s.lastFireMs) + (s.due ? ' (due)' : ''), s.lastTaskId ?? '-', iso(s.nextFireMs)]);
        return list.schedules.length === 0 ? `no schedules in ${list.file}\n` : table(rows);
      });
      for (const p of list.problems) process.stderr.write(`warren: ${p.message}\n`);
      process.exitCode = list.problems.length === 0 ? ExitCode.ok : ExitCode.failed;
    });
}
