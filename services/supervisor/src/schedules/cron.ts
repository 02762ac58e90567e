/**
 * Cron expressions of board schedules, parsed and evaluated by croner
 * (https://github.com/Hexagon/croner): 5 fields (`minute hour day-of-month month day-of-week`) or 6
 * with seconds first, the usual `*`, lists, ranges and steps, names of months and weekdays, `L`,
 * `W`, `#`. Day-of-month and day-of-week combine with OR, as in Vixie cron. Times are computed in
 * an IANA time zone (UTC when none is given); across a daylight-saving change a job at a fixed
 * time runs once (at the first valid time after a gap), as croner documents.
 */
import { Cron } from 'croner';

/** A compiled cron expression in its time zone. */
export interface CronSchedule {
  /** The expression as given. */
  readonly cron: string;
  /** The IANA time zone name, or undefined for UTC. */
  readonly timezone: string | undefined;
  /** The latest fire time at or before `nowMs` (ms since the epoch), or undefined when there is none. */
  latestFireMs(nowMs: number): number | undefined;
  /** The first fire time strictly after `afterMs` (ms since the epoch), or undefined when there is none. */
  nextFireMs(afterMs: number): number | undefined;
}

/** Why an expression or a time zone was refused: the field (`cron` or `timezone`) and the reason. */
export interface CronProblem {
  readonly field: 'cron' | 'timezone';
  readonly reason: string;
}

/**
 * Whether `timezone` is an IANA time zone name this Node.js knows (its ICU data), as
 * `Intl.DateTimeFormat` accepts it.
 */
export function isTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Compiles `cron` (5 fields, or 6 with seconds first) in `timezone` (IANA name; UTC when
 * undefined). Never schedules a timer: the caller asks for fire times.
 * @returns the schedule, or the problem naming the field at fault.
 */
export function compileCron(cron: string, timezone: string | undefined): CronSchedule | CronProblem {
  if (timezone !== undefined && !isTimeZone(timezone)) {
    return { field: 'timezone', reason: `'${timezone}' is not an IANA time zone name (such as Europe/Paris or America/New_York)` };
  }
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return { field: 'cron', reason: `'${cron}' has ${fields} field${fields === 1 ? '' : 's'}; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6, with seconds first` };
  }
  let job: Cron;
  try {
    job = new Cron(cron.trim(), { timezone: timezone ?? 'Etc/UTC', mode: '5-or-6-parts', paused: true });
  } catch (error) {
    return { field: 'cron', reason: `'${cron}' is not a cron expression: ${String((error as Error).message).replace(/^CronPattern: /, '')}` };
  }
  if (job.nextRun(new Date(0)) === null) return { field: 'cron', reason: `'${cron}' never fires` };
  return {
    cron,
    timezone,
    // croner's previous runs are strictly before the reference: 1 ms later includes a run at `nowMs`.
    latestFireMs: (nowMs) => job.previousRuns(1, new Date(nowMs + 1))[0]?.getTime(),
    nextFireMs: (afterMs) => job.nextRun(new Date(afterMs))?.getTime(),
  };
}

/** Type guard for {@link compileCron}'s failure case. */
export function isCronProblem(value: CronSchedule | CronProblem): value is CronProblem {
  return 'reason' in value;
}
