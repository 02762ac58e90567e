/**
 * What the board's schedules are now: each with its last and next fire time and the last task
 * written, for `warren schedule list` and `GET /api/v1/schedules`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScheduleBaseline, ScheduleLedger, ScheduleRun } from '@warren/registry';
import { parseScheduleFile, SCHEDULES_FILE, type ScheduleProblem } from './schedule-file.js';

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
 * The schedules of the board folder `boardDir` at `nowMs`, with their last runs from `ledger`
 * (none without one: a state database not made yet). Reads the schedules file; a file that does
 * not parse as a whole is one problem, schedules with errors are left out with theirs.
 * @throws {Error} when the file exists but cannot be read (permissions).
 */
export function scheduleList(boardDir: string, ledger: ScheduleLedger | undefined, nowMs: number): ScheduleList {
  const file = join(boardDir, SCHEDULES_FILE);
  if (!existsSync(file)) return { file, schedules: [], problems: [] };
  const parsed = parseScheduleFile(readFileSync(file, 'utf8'), file);
  const known = (name: string): { baseline: ScheduleBaseline | undefined; last: ScheduleRun | undefined } =>
    ledger === undefined ? { baseline: undefined, last: undefined } : { baseline: ledger.storedBaseline(name), last: ledger.lastRun(name) };
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
}
