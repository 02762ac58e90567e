/**
 * The board tasks the planner may consider, kept from what changed since the last tick instead of
 * a scan of every task: see {@link ReadyCandidates}.
 */
import { isReady, type BoardConfig, type Task } from '@warren/kanban';
import { TaskState, type TaskRow } from '@warren/registry';

/** A derived value not made yet. */
const UNSET: unique symbol = Symbol('unset');

/** What {@link ReadyCandidates} reads of a board task. */
export type CandidateTask = Pick<Task, 'id' | 'status' | 'dependsOn'>;

/** What {@link ReadyCandidates} reads of a board. */
export interface CandidateBoard<T extends CandidateTask> {
  readonly config: BoardConfig;
  readonly tasks: readonly T[];
}

/** What {@link ReadyCandidates} reads of the task rows (a `StateStore`). */
export interface CandidateRows {
  task(id: string): TaskRow | undefined;
  readonly taskVersion: number;
  taskChangesSince(since: number): readonly string[] | undefined;
}

/**
 * Whether board task `task` may be planned as far as the board and its row say, time apart: in the
 * ready column with every dependency done, and either without a row (the planner makes one) or
 * with a `ready` row whose card shows it (`boardSync` clean). The scan {@link ReadyCandidates}
 * keeps the result of.
 */
export function isCandidate(task: CandidateTask, byId: ReadonlyMap<string, Pick<Task, 'status'>>, config: BoardConfig, row: TaskRow | undefined): boolean {
  if (!isReady(task, byId, config)) return false;
  return row === undefined || (row.state === TaskState.ready && row.boardSync !== 'pending');
}

/**
 * The indices (in board order) of the board's tasks for which {@link isCandidate} holds, and how
 * many tasks are in the in-progress column, kept up to date between calls of {@link update} from
 * what changed: the task rows written since (the store's change log) and the board's tasks
 * replaced since (an identity comparison of the task array, one pointer per task, done only when
 * the board's version moved). A new snapshot, a changed task count or order, repeated ids, a board
 * with dependencies whose tasks changed, or a change log that no longer reaches back make it scan
 * everything again. Equal to a scan after any change (the property test compares both).
 */
export class ReadyCandidates<T extends CandidateTask, D = undefined> {
  private board: CandidateBoard<T> | undefined;
  private boardVersion = -1;
  private rowVersion = -1;
  /** `board.tasks` as last examined: a task replaced since is a different object. */
  private seen: T[] = [];
  private indexById = new Map<string, number>();
  /** Whether any task depends on another (then a board change rescans: readiness spreads). */
  private hasDependencies = false;
  private member = new Uint8Array(0);
  /** The candidates' indices, ascending. */
  private list: number[] = [];
  private inProgressCount = 0;
  /** What `derive` made of the task at each index, kept until that task is replaced. */
  private derivedAt: (D | typeof UNSET)[] = [];
  /** Full scans made (for tests and counters). */
  scans = 0;
  /** Indices examined again by {@link update} since the last {@link takeTouched}, in order, repeats kept. */
  private touched: number[] = [];
  /** Whether a scan (or a journal too long to keep) made {@link touched} incomplete since the last take. */
  private touchedLost = true;

  /**
   * @param derive what callers need of a task that depends on nothing else (read with
   *   {@link derived}): computed once per task version instead of once per tick.
   */
  constructor(private readonly derive?: (task: T) => D) {}

  /**
   * What `derive` makes of the task at `index` of the board given to the last {@link update}
   * (undefined without `derive`).
   */
  derived(index: number): D {
    const known = this.derivedAt[index];
    if (known !== UNSET) return known as D;
    const made = this.derive ? this.derive(this.seen[index]!) : (undefined as D);
    this.derivedAt[index] = made;
    return made;
  }

  /** The candidates' indices into the board's task array, ascending (do not modify). */
  get indices(): readonly number[] {
    return this.list;
  }

  /** Whether the task at `index` of the board given to the last {@link update} is a candidate. */
  isCandidateAt(index: number): boolean {
    return this.member[index] === 1;
  }

  /**
   * The indices whose task or row {@link update} examined again since the last call (a task
   * replaced on the board, a row written; in order, an index may repeat), so that a caller keeping
   * something per candidate can follow the changes: every index whose candidacy, task or row may
   * have changed is in it. Undefined when the set was scanned whole since (or more changes came
   * than are worth keeping): then anything may have changed and indices may mean other tasks.
   */
  takeTouched(): readonly number[] | undefined {
    const touched = this.touched;
    this.touched = [];
    if (this.touchedLost) {
      this.touchedLost = false;
      return undefined;
    }
    return touched;
  }

  /** How many of the board's tasks are in the column of the `in_progress` role. */
  get inProgress(): number {
    return this.inProgressCount;
  }

  /**
   * Brings the candidates up to date with `board` (at the mirror's `boardVersion`, which moves on
   * every change of the board, in place or not), `byId` (its tasks by id) and `rows`.
   */
  update(board: CandidateBoard<T>, boardVersion: number, byId: ReadonlyMap<string, Pick<Task, 'status'>>, rows: CandidateRows): void {
    const rowChanges = this.board === undefined ? undefined : rows.taskChangesSince(this.rowVersion);
    if (board !== this.board || rowChanges === undefined || board.tasks.length !== this.seen.length) {
      this.scan(board, boardVersion, byId, rows);
      return;
    }
    const { tasks, config } = board;
    if (boardVersion !== this.boardVersion) {
      if (this.hasDependencies) {
        this.scan(board, boardVersion, byId, rows);
        return;
      }
      for (let i = 0; i < tasks.length; i += 1) {
        const task = tasks[i]!;
        const before = this.seen[i]!;
        if (task === before) continue;
        if (task.id !== before.id || task.dependsOn.length > 0) {
          this.scan(board, boardVersion, byId, rows);
          return;
        }
        this.seen[i] = task;
        this.derivedAt[i] = UNSET;
        const progress = config.roles.in_progress;
        this.inProgressCount += (task.status === progress ? 1 : 0) - (before.status === progress ? 1 : 0);
        this.touch(i);
        this.set(i, isCandidate(task, byId, config, rows.task(task.id)));
      }
      this.boardVersion = boardVersion;
    }
    for (const id of rowChanges) {
      const i = this.indexById.get(id);
      if (i === undefined) continue;
      this.touch(i);
      this.set(i, isCandidate(tasks[i]!, byId, config, rows.task(id)));
    }
    this.rowVersion = rows.taskVersion;
  }

  private scan(board: CandidateBoard<T>, boardVersion: number, byId: ReadonlyMap<string, Pick<Task, 'status'>>, rows: CandidateRows): void {
    this.scans += 1;
    this.touched = [];
    this.touchedLost = true;
    const { tasks, config } = board;
    this.board = board;
    this.boardVersion = boardVersion;
    this.rowVersion = rows.taskVersion;
    this.seen = tasks.slice();
    this.derivedAt = new Array<D | typeof UNSET>(tasks.length).fill(UNSET);
    this.indexById = new Map();
    this.member = new Uint8Array(tasks.length);
    this.list = [];
    this.inProgressCount = 0;
    this.hasDependencies = false;
    let unique = true;
    for (let i = 0; i < tasks.length; i += 1) {
      const task = tasks[i]!;
      if (this.indexById.has(task.id)) unique = false;
      this.indexById.set(task.id, i);
      if (task.dependsOn.length > 0) this.hasDependencies = true;
      if (task.status === config.roles.in_progress) this.inProgressCount += 1;
      if (isCandidate(task, byId, config, rows.task(task.id))) {
        this.member[i] = 1;
        this.list.push(i);
      }
    }
    // An id on two tasks: a row change could not be traced to one index. Scan on every call.
    if (!unique) this.board = undefined;
  }

  /** Notes that index `i` was examined again (see {@link takeTouched}); a journal longer than the board is dropped. */
  private touch(i: number): void {
    if (this.touchedLost) return;
    if (this.touched.length > 2 * this.seen.length + 1024) {
      this.touched = [];
      this.touchedLost = true;
      return;
    }
    this.touched.push(i);
  }

  private set(i: number, candidate: boolean): void {
    if ((this.member[i] === 1) === candidate) return;
    this.member[i] = candidate ? 1 : 0;
    const at = lowerBound(this.list, i);
    if (candidate) this.list.splice(at, 0, i);
    else this.list.splice(at, 1);
  }
}

/** The first position in ascending `list` whose value is not below `value`. */
function lowerBound(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
