/**
 * Board schedules in the supervisor's tick: the schedules file is read again when it changes, and
 * each schedule whose latest fire time has come writes one task card in the board's own format.
 *
 * The rules:
 * - The fire time run is the latest one at or before now that is after the schedule's last run:
 *   several fire times missed while Warren was down give one card, not one each.
 * - A new schedule (or one whose cron expression or time zone changed) does not run its past: its
 *   baseline is the time it was first seen, kept in the registry (`schedules`).
 * - A card carries its schedule and fire time (frontmatter `schedule` and `schedule_fire` where the
 *   board has frontmatter, and a marker line in its body on every board). Before writing, the
 *   board is searched for a card of the same schedule and fire time, so a crash between the write
 *   and the record of the run (`schedule_runs`) does not give two cards.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createTask, rewriteFields, TaskCreateError, type FieldWrite, type Task, type TaskDraft } from '@warren/kanban';
import { ScheduleLedger } from '@warren/registry';
import type { BoardMirror } from '../board/mirror.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { parseScheduleFile, SCHEDULES_FILE, type BoardSchedule, type ScheduleProblem } from './schedule-file.js';

/** How often the tick looks at the schedules file for a change (one `stat`), in ms. */
export const RELOAD_CHECK_MS = 1_000;

/** The line in a scheduled card's body that names its schedule and fire time (an HTML comment: markdown viewers hide it). */
export function scheduleMarker(name: string, fireMs: number): string {
  return `<!-- warren-schedule: ${name} ${new Date(fireMs).toISOString()} -->`;
}

/** Whether `task` is the card of schedule `name` for the fire time `fireMs`. */
export function isScheduledCard(task: Pick<Task, 'fields' | 'body'>, name: string, fireMs: number): boolean {
  if (task.fields.schedule === name && task.fields.schedule_fire === new Date(fireMs).toISOString()) return true;
  return task.body.includes(scheduleMarker(name, fireMs));
}

/** The draft of the card schedule `schedule` writes for `fireMs`. */
export function scheduledDraft(schedule: BoardSchedule, fireMs: number): TaskDraft {
  const { task } = schedule;
  const body = task.body === undefined || task.body.trim() === '' ? '' : `${task.body.replace(/\s+$/, '')}\n\n`;
  return {
    title: task.title,
    body: `${body}${scheduleMarker(schedule.name, fireMs)}\n`,
    ...(task.capabilities ? { capabilities: task.capabilities } : {}),
    ...(task.priority ? { priority: task.priority } : {}),
    ...(task.command ? { command: task.command } : {}),
    ...(task.labels ? { labels: task.labels } : {}),
  };
}

/**
 * The supervisor's board schedules. {@link fire} is the tick's stage; nothing here runs a timer of
 * its own (the tick runs every `--tick-interval`, 200 ms by default).
 */
export class BoardSchedules {
  private readonly ledger: ScheduleLedger;
  private readonly path: string;
  private schedules: BoardSchedule[] = [];
  /** The file's identity when last read (`size:mtimeNs:ino`), '' when absent. */
  private fileKey: string | undefined;
  /** Baselines of the schedules now loaded, by name (set on load). */
  private readonly sinceMs = new Map<string, number>();
  /** The last fire time run of each loaded schedule, by name. */
  private readonly lastFireMs = new Map<string, number>();
  /** Schedules whose card the board refused: left out until the file changes. */
  private readonly refused = new Set<string>();
  /** When the schedules file was last looked at (ms); the first tick looks at once. */
  private checkedMs = -Infinity;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly mirror: BoardMirror,
  ) {
    this.ledger = new ScheduleLedger(ctx.db);
    this.path = join(ctx.config.boardDir, SCHEDULES_FILE);
  }

  /**
   * The tick's stage: reads the schedules file again if it changed (looked at, with one `stat`, at
   * most every {@link RELOAD_CHECK_MS}), then writes the card of each schedule whose fire time has
   * come (see the module's rules). A card the board refuses (a priority it has not) is reported as
   * `input.rejected` and its schedule left out until the file changes; other failures (the board
   * unreadable, its create lock held) are logged and tried again on the next tick. Never rejects.
   * @returns undefined (nothing to wait for) when there is no schedule and the file is not due
   *   for a look.
   */
  fire(nowMs: number): Promise<void> | undefined {
    if (this.schedules.length === 0 && nowMs - this.checkedMs < RELOAD_CHECK_MS && nowMs >= this.checkedMs) return undefined;
    return this.fireNow(nowMs);
  }

  private async fireNow(nowMs: number): Promise<void> {
    try {
      await this.reload(nowMs);
    } catch (error) {
      this.ctx.log.error({ err: error, path: this.path }, 'cannot look at the schedules file; the schedules read before stay');
    }
    const board = this.mirror.board;
    if (board === undefined || this.schedules.length === 0) return;
    for (const schedule of this.schedules) {
      if (this.refused.has(schedule.name)) continue;
      const fireMs = schedule.fires.latestFireMs(nowMs);
      const after = Math.max(this.sinceMs.get(schedule.name) ?? nowMs, this.lastFireMs.get(schedule.name) ?? -Infinity);
      if (fireMs === undefined || fireMs <= after) continue;
      try {
        await this.run(schedule, fireMs, board.tasks, nowMs);
      } catch (error) {
        if (error instanceof TaskCreateError) {
          this.refused.add(schedule.name);
          this.reject({ line: schedule.line, schedule: schedule.name, field: `task${error.field ? `.${error.field}` : ''}`, reason: error.reason, message: `${SCHEDULES_FILE}:${schedule.line}: schedule '${schedule.name}': the board refuses its card: ${error.reason}` });
        } else {
          this.ctx.log.error({ err: error, schedule: schedule.name }, 'cannot write the card of a schedule; trying again on the next tick');
        }
      }
    }
  }

  /** Writes (or finds) the card of `schedule` for `fireMs` and records the run. */
  private async run(schedule: BoardSchedule, fireMs: number, tasks: readonly Task[], nowMs: number): Promise<void> {
    const { ctx } = this;
    const boardDir = ctx.config.boardDir;
    const existing = tasks.find((t) => isScheduledCard(t, schedule.name, fireMs));
    let taskId: string;
    let path: string;
    if (existing !== undefined) {
      taskId = existing.id;
      path = existing.path;
    } else {
      const created = await createTask(boardDir, scheduledDraft(schedule, fireMs), {
        ...(ctx.config.boardFormat ? { format: ctx.config.boardFormat } : {}),
        ...(ctx.mapping ? { mapping: ctx.mapping } : {}),
        now: new Date(nowMs),
      });
      taskId = created.id;
      path = created.path;
      await this.markCard(path, schedule, fireMs);
    }
    const shown = path.startsWith(`${boardDir}/`) ? path.slice(boardDir.length + 1) : path;
    const fireTime = new Date(fireMs).toISOString();
    ctx.transaction(() => {
      this.ledger.record({ name: schedule.name, fireMs, taskId, writtenMs: nowMs });
      ctx.emit({ actor: SUPERVISOR, action: 'schedule.fired', object: `schedule:${schedule.name}`, details: { schedule: schedule.name, fireMs, fireTime, taskId, path: shown, found: existing !== undefined } });
    });
    this.lastFireMs.set(schedule.name, fireMs);
    this.mirror.markChanged(path);
    ctx.requestTick();
  }

  /**
   * Adds `schedule`, `schedule_fire` and the schedule's `fields` to the frontmatter of the card
   * just written (replacing the file atomically). A card without frontmatter (an Obsidian card)
   * keeps only the body's marker.
   */
  private async markCard(path: string, schedule: BoardSchedule, fireMs: number): Promise<void> {
    const text = await readFile(path, 'utf8');
    if (!/^(\uFEFF)?---\r?\n/.test(text)) return;
    const values: [string, string | number | boolean][] = [['schedule', schedule.name], ['schedule_fire', new Date(fireMs).toISOString()], ...Object.entries(schedule.task.fields ?? {})];
    const writes: FieldWrite[] = values.map(([key, value]) => ({ key, value, yaml: typeof value === 'string' ? JSON.stringify(value) : String(value) }));
    const out = rewriteFields(text, writes, path);
    const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const info = await stat(path);
      const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, info.mode & 0o7777);
      try {
        await handle.writeFile(out);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  /** Reads the schedules file again when its size, mtime or inode changed (or it appeared or went). */
  private async reload(nowMs: number): Promise<void> {
    if (nowMs - this.checkedMs < RELOAD_CHECK_MS && nowMs >= this.checkedMs) return;
    this.checkedMs = nowMs;
    let key = '';
    try {
      const info = await stat(this.path, { bigint: true });
      key = `${info.size}:${info.mtimeNs}:${info.ino}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (key === this.fileKey) return;
    this.fileKey = key;
    this.refused.clear();
    if (key === '') {
      if (this.schedules.length > 0) this.ctx.log.info({ path: this.path }, 'the schedules file is gone; no schedule runs');
      this.load([], nowMs);
      return;
    }
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      this.ctx.log.error({ err: error, path: this.path }, 'cannot read the schedules file; the schedules read before stay');
      return;
    }
    const file = parseScheduleFile(text, SCHEDULES_FILE);
    for (const problem of file.problems) this.reject(problem);
    if (file.unreadable) {
      this.ctx.log.warn({ path: this.path }, 'the schedules file cannot be read; the schedules read before stay');
      return;
    }
    this.load(file.schedules, nowMs);
    this.ctx.log.info({ schedules: file.schedules.map((s) => s.name), rejected: file.problems.length }, 'schedules loaded');
  }

  /** Makes `schedules` the loaded ones, with their baselines and last runs from the registry. */
  private load(schedules: BoardSchedule[], nowMs: number): void {
    this.schedules = schedules;
    this.sinceMs.clear();
    this.lastFireMs.clear();
    for (const s of schedules) {
      this.sinceMs.set(s.name, this.ledger.baseline(s.name, s.cron, s.timezone ?? '', nowMs).sinceMs);
      const last = this.ledger.lastRun(s.name);
      if (last !== undefined) this.lastFireMs.set(s.name, last.fireMs);
    }
  }

  /** Reports a problem of the schedules file: `input.rejected` and a warning. */
  private reject(problem: ScheduleProblem): void {
    this.ctx.emit(
      { actor: SUPERVISOR, action: 'input.rejected', object: `file:${SCHEDULES_FILE}`, details: { kind: 'schedule', path: SCHEDULES_FILE, line: problem.line, message: problem.message } },
      { level: 'warn' },
    );
  }
}
