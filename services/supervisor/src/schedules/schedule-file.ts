/**
 * The board's schedules file, `schedules.yaml` in the board folder (beside the tasks of any board
 * format):
 *
 * ```yaml
 * schedules:
 *   - name: nightly-report          # [a-z0-9][a-z0-9_-]{0,62}, unique in the file
 *     cron: "0 9 * * 1-5"           # 5 fields, or 6 with seconds first (see cron.ts)
 *     timezone: America/New_York    # IANA name; default UTC
 *     task:                         # the card written at each fire time
 *       title: Nightly report
 *       body: Summarise yesterday's runs.
 *       capabilities: [shell]
 *       priority: high
 *       command: ./report.sh        # Warren boards only
 *       labels: [report]
 *       fields: { team: ops }       # extra frontmatter fields (boards with frontmatter)
 * ```
 *
 * Each schedule is checked on its own: a bad one is reported with the file, the schedule and the
 * field and left out, the others run.
 */
import { lineOf, parseYamlSource } from '@warren/kanban';
import { z } from 'zod';
import { compileCron, isCronProblem, type CronSchedule } from './cron.js';

/** The file name of a board's schedules, in the board folder. */
export const SCHEDULES_FILE = 'schedules.yaml';

/** Frontmatter fields a schedule's `fields` may not set: the board's own and the schedule's marks. */
const RESERVED_FIELDS = new Set([
  'id', 'title', 'status', 'priority', 'labels', 'tags', 'capabilities', 'assignee', 'depends_on', 'dependencies', 'parent', 'parent_task_id',
  'command', 'created', 'created_date', 'created_at', 'updated', 'updated_date', 'started', 'completed', 'result', 'schedule', 'schedule_fire',
]);

const ScheduleTask = z
  .object({
    title: z.string().trim().min(1, "must not be empty").max(200),
    body: z.string().optional(),
    capabilities: z.array(z.string().min(1)).optional(),
    priority: z.string().min(1).optional(),
    command: z.string().min(1).optional(),
    labels: z.array(z.string().min(1)).optional(),
    fields: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'field names are lowercase letters, digits and _'),
        z.union([z.string(), z.number(), z.boolean()]),
      )
      .optional(),
  })
  .strict();

const ScheduleEntry = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lowercase letters, digits, _ and -, starting with a letter or digit (at most 63)'),
    cron: z.string().min(1),
    timezone: z.string().min(1).optional(),
    task: ScheduleTask,
  })
  .strict();

/** What a schedule writes at each fire time: a task draft and extra frontmatter fields. */
export type ScheduleTaskSpec = z.infer<typeof ScheduleTask>;

/** One checked schedule of the file. */
export interface BoardSchedule {
  readonly name: string;
  readonly cron: string;
  /** IANA time zone name, undefined for UTC. */
  readonly timezone: string | undefined;
  readonly task: ScheduleTaskSpec;
  /** The compiled expression. */
  readonly fires: CronSchedule;
  /** 1-based line of the schedule in the file. */
  readonly line: number;
}

/** A problem of the file: the line, the schedule (its name or `#<index>`, null for the whole file), the field and the reason. */
export interface ScheduleProblem {
  readonly line: number;
  readonly schedule: string | null;
  readonly field: string | null;
  readonly reason: string;
  /** `<path>:<line>: schedule '<name>': '<field>' <reason>`. */
  readonly message: string;
}

/** The file as read: the good schedules, and one problem per bad schedule (or for the whole file). */
export interface ScheduleFile {
  readonly schedules: BoardSchedule[];
  readonly problems: ScheduleProblem[];
  /** Whether the file as a whole could not be read (not YAML, not `schedules:` with a list): no schedule came from it. */
  readonly unreadable: boolean;
}

/**
 * Checks the text of a schedules file. Pure.
 * @param path the file as shown in messages.
 */
export function parseScheduleFile(text: string, path: string): ScheduleFile {
  const problem = (line: number, schedule: string | null, field: string | null, reason: string): ScheduleProblem => ({
    line,
    schedule,
    field,
    reason,
    message: `${path}:${line}: ${schedule === null ? '' : `schedule '${schedule}': `}${field === null ? '' : `'${field}' `}${reason}`,
  });
  const source = parseYamlSource(text);
  if ('message' in source) return { schedules: [], problems: [problem(source.line, null, null, `is not valid YAML: ${source.message}`)], unreadable: true };
  const value = source.value;
  if (value === null || value === undefined) return { schedules: [], problems: [], unreadable: false };
  if (typeof value !== 'object' || Array.isArray(value) || !('schedules' in value)) {
    return { schedules: [], problems: [problem(1, null, 'schedules', 'must be the file\'s one key, holding a list of schedules')], unreadable: true };
  }
  const extra = Object.keys(value).filter((k) => k !== 'schedules');
  const list = (value).schedules;
  if (extra.length > 0) return { schedules: [], problems: [problem(lineOf(source, [extra[0]!]), null, extra[0]!, "is not a key of the schedules file (only 'schedules')")], unreadable: true };
  if (list === null) return { schedules: [], problems: [], unreadable: false };
  if (!Array.isArray(list)) return { schedules: [], problems: [problem(lineOf(source, ['schedules']), null, 'schedules', 'must be a list of schedules')], unreadable: true };

  const schedules: BoardSchedule[] = [];
  const problems: ScheduleProblem[] = [];
  const seen = new Set<string>();
  list.forEach((item: unknown, index) => {
    const named = typeof (item as { name?: unknown } | null)?.name === 'string' ? (item as { name: string }).name : `#${index + 1}`;
    const at = (...keys: PropertyKey[]): number => lineOf(source, ['schedules', index, ...keys]);
    const parsed = ScheduleEntry.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
      const field = keys.length === 0 ? null : keys.map(String).join('.');
      const reason = issue.code === 'unrecognized_keys' ? 'is not a schedule field' : issue.message;
      problems.push(problem(at(...keys), named, field, reason));
      return;
    }
    const entry = parsed.data;
    if (seen.has(entry.name)) {
      problems.push(problem(at('name'), named, 'name', 'is the name of an earlier schedule of the file; names must be unique'));
      return;
    }
    seen.add(entry.name);
    const reserved = Object.keys(entry.task.fields ?? {}).find((k) => RESERVED_FIELDS.has(k));
    if (reserved !== undefined) {
      problems.push(problem(at('task', 'fields', reserved), named, `task.fields.${reserved}`, 'is a field the board or the schedule writes; choose another name'));
      return;
    }
    const fires = compileCron(entry.cron, entry.timezone);
    if (isCronProblem(fires)) {
      problems.push(problem(at(fires.field), named, fires.field, fires.reason));
      return;
    }
    schedules.push({ name: entry.name, cron: entry.cron, timezone: entry.timezone, task: entry.task, fires, line: at() });
  });
  return { schedules, problems, unreadable: false };
}
