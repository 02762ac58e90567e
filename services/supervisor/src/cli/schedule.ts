import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ScheduleLedger, type ScheduleBaseline, type ScheduleRun } from '@warren/registry';
import { openDatabase } from '@warren/store';
import { parseScheduleFile, SCHEDULES_FILE, type ScheduleProblem } from '../schedules/schedule-file.js';
import { addPathOptions, configFrom, ExitCode, iso, print, table, type PathFlags } from './common.js';

/** One line of `warren schedule list --json`. */
export interface ScheduleListing {
  readonly name: string;
  readonly cron: string;
  /** IANA time zone name, null for UTC. */
  readonly timezone: string | null;
  /** The latest fire time run (ms since the epoch), null when none yet. */
  readonly lastFireMs: number | null;
  readonly lastFire: string | null;
  /** The task written for the last fire time. */
  readonly lastTaskId: string | null;
  /** The next fire time after now (ms since the epoch), null when the expression fires no more. */
  readonly nextFireMs: number | null;
  readonly nextFire: string | null;
  /**
   * Whether a fire time has come that is not run yet (Warren is down, or about to run it): the
   * next start writes its card at once.
   */
  readonly due: boolean;
}

/** What `warren schedule list --json` prints. */
export interface ScheduleList {
  readonly file: string;
  readonly schedules: ScheduleListing[];
  /** The file's problems: schedules left out, with line, schedule, field and reason. */
  readonly problems: ScheduleProblem[];
}

/**
 * The schedules of the board folder `boardDir` at `nowMs`, with their last runs from the state
 * database `dbPath` when it exists. Opens and closes the database.
 */
export function listSchedules(boardDir: string, dbPath: string, nowMs: number): ScheduleList {
  const file = join(boardDir, SCHEDULES_FILE);
  if (!existsSync(file)) return { file, schedules: [], problems: [] };
  const parsed = parseScheduleFile(readFileSync(file, 'utf8'), file);
  let known: (name: string) => { baseline: ScheduleBaseline | undefined; last: ScheduleRun | undefined } = () => ({ baseline: undefined, last: undefined });
  const db = existsSync(dbPath) ? openDatabase(dbPath) : undefined;
  try {
    if (db !== undefined) {
      const ledger = new ScheduleLedger(db);
      known = (name) => ({ baseline: ledger.storedBaseline(name), last: ledger.lastRun(name) });
    }
    const schedules = parsed.schedules.map((s): ScheduleListing => {
      const { baseline, last } = known(s.name);
      const unchanged = baseline !== undefined && baseline.cron === s.cron && baseline.timezone === (s.timezone ?? '');
      const latest = s.fires.latestFireMs(nowMs);
      const after = unchanged ? Math.max(baseline.sinceMs, last?.fireMs ?? -Infinity) : nowMs;
      const nextFireMs = s.fires.nextFireMs(nowMs) ?? null;
      return {
        name: s.name,
        cron: s.cron,
        timezone: s.timezone ?? null,
        lastFireMs: last?.fireMs ?? null,
        lastFire: last === undefined ? null : new Date(last.fireMs).toISOString(),
        lastTaskId: last?.taskId ?? null,
        nextFireMs,
        nextFire: nextFireMs === null ? null : new Date(nextFireMs).toISOString(),
        due: latest !== undefined && latest > after,
      };
    });
    return { file, schedules, problems: parsed.problems };
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
