/**
 * Obsidian Kanban boards (https://github.com/mgmeyers/obsidian-kanban): a markdown note with
 * `kanban-plugin: board` frontmatter, one `## Column` heading per lane, cards as
 * `- [ ] text` lines (indented lines continue a card), `- [x]` for a done card, an optional
 * `***` followed by `## Archive` (archived cards, not on the board) and the
 * `%% kanban:settings` footer. A trailing `(n)` on a heading is the lane's WIP limit.
 *
 * A card may link a task note (`[[note|Title]]` or `[Title](note.md)`); the note's frontmatter, if
 * any, adds `id`/`uuid`, `capabilities`, `labels`/`tags`, `depends_on`, `priority`, `parent`. Card
 * tokens: `#tag`, `prio:P1` (or `priority:high`), `id:x`, `dep:a,b`, `parent:x`, `@assignee`,
 * `✅ 2025-07-31`. A card's id is its `id:` token, else the note's id, else a slug of the linked
 * note's name, else of its title. The column a card sits in is its status; Warren moves the card
 * line(s) between headings and ticks `[x]` in the done column, leaving every other byte alone.
 */
import { readdir, readFile, realpath, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { checkDraft, firstFree, prioritySpelling, slugOf, titleFileName, withCreateLock, withFinalNewline, writeNewFile } from '../create.js';
import { BoardConfigError, TaskConflictError, TaskCreateError, TaskFileError, TaskUpdateError } from '../errors.js';
import { FrontmatterFields } from '../fields.js';
import { isInside, mapConcurrent, readBoardFile } from '../load.js';
import { capabilitiesFromTags, columnIdOf, isMappingProblem, mappingFileError, mapPriority, MAPPED_PRIORITIES, statusResolver } from '../mapping.js';
import { decodeUtf8, displayPath, findFrontmatter, firstInvalidUtf8, isFrontmatterProblem, ID_PATTERN, MAX_TASK_FILE_BYTES, parseTimestampMs, sha256Hex } from '../text.js';
import type {
  BoardColumn,
  BoardConfig,
  BoardFormat,
  BoardSnapshot,
  CreateTaskOptions,
  CreateTaskResult,
  LoadBoardOptions,
  OwnedFieldChanges,
  Task,
  TaskDraft,
  UpdateTaskOptions,
  UpdateTaskResult,
} from '../types.js';
import { checkChanges, doubleQuoted, replaceAtomically } from '../update.js';
import { isYamlProblem, parseYamlSource } from '../yaml-source.js';
import { uniqueColumnIds } from './common.js';

const BOARD_MARK = /^---[ \t]*\r?\n(?:[^\n]*\n)*?[ \t]*kanban-plugin:[ \t]*['"]?board['"]?[ \t]*\r?\n/;
const CARD = /^- \[([ xX])\] ?(.*)$/;
const HEADING = /^##[ \t]+(.+?)[ \t]*$/;

async function isBoardNote(path: string): Promise<boolean> {
  try {
    const head = (await readFile(path)).subarray(0, 4096).toString('utf8').replace(/^\uFEFF/, '');
    return BOARD_MARK.test(head);
  } catch {
    return false;
  }
}

/** The board note for `dir`: `dir` itself (a note), `mapping.boardFile`, or the first board note in `dir` or `dir/boards`. */
async function findBoard(dir: string, options: LoadBoardOptions): Promise<{ boardDir: string; boardPath: string } | undefined> {
  const absolute = resolve(dir);
  try {
    if ((await stat(absolute)).isFile()) return (await isBoardNote(absolute)) ? { boardDir: dirname(absolute), boardPath: absolute } : undefined;
  } catch {
    return undefined;
  }
  if (options.mapping?.boardFile !== undefined) return { boardDir: absolute, boardPath: resolve(absolute, options.mapping.boardFile) };
  for (const folder of [absolute, join(absolute, 'boards')]) {
    let names: string[];
    try {
      names = (await readdir(folder)).filter((n) => n.endsWith('.md')).sort();
    } catch {
      continue;
    }
    for (const name of names) if (await isBoardNote(join(folder, name))) return { boardDir: absolute, boardPath: join(folder, name) };
  }
  return undefined;
}

interface Line {
  readonly start: number;
  /** Without the line ending. */
  readonly text: string;
  /** Offset after the line ending. */
  readonly next: number;
}

function linesOf(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    const content = text.slice(start, end);
    out.push({ start, text: content.endsWith('\r') ? content.slice(0, -1) : content, next: nl === -1 ? text.length : nl + 1 });
    start = end + 1;
  }
  return out;
}

interface RawColumn {
  readonly id: string;
  readonly heading: string;
  readonly name: string;
  readonly wip: number | undefined;
  /** Index (in lines) of the heading. */
  readonly line: number;
}

interface RawCard {
  readonly column: string;
  /** Index of the first line. */
  readonly first: number;
  /** Index after the last line. */
  readonly end: number;
  readonly checked: boolean;
  /** The card's lines without line endings. */
  readonly lines: string[];
  readonly hash: string;
}

interface ParsedBoard {
  readonly text: string;
  readonly lines: Line[];
  readonly columns: RawColumn[];
  readonly cards: RawCard[];
  readonly eol: string;
}

/** The hash that identifies a card's content and column (`Task.hash` of a card). */
function cardHash(lines: readonly string[], column: string): string {
  return sha256Hex(Buffer.from(`${column}\n${lines.join('\n')}`, 'utf8'));
}

/** Splits the board note into columns and cards; throws a reason string on a structural problem. */
function parseBoardText(text: string): ParsedBoard | { line: number; reason: string } {
  const span = findFrontmatter(text);
  if (isFrontmatterProblem(span)) return span;
  const yaml = parseYamlSource(text.slice(span.yamlStart, span.yamlEnd));
  if (isYamlProblem(yaml)) return { line: yaml.line + 1, reason: `invalid YAML in the frontmatter: ${yaml.message}` };
  if ((yaml.value as Record<string, unknown> | null)?.['kanban-plugin'] !== 'board') return { line: 2, reason: "not an Obsidian Kanban board: the frontmatter has no 'kanban-plugin: board'" };
  const lines = linesOf(text);
  const firstBody = lines.findIndex((l) => l.start >= span.bodyStart);
  const raws: Omit<RawColumn, 'id'>[] = [];
  const cards: Omit<RawCard, 'column'>[] = [];
  const cardColumn: number[] = [];
  let archived = false;
  for (let i = firstBody === -1 ? lines.length : firstBody; i < lines.length; i += 1) {
    const line = lines[i]!.text;
    if (line.startsWith('%% kanban:settings')) break;
    if (/^\*\*\*[ \t]*$/.test(line)) {
      archived = true;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      if (archived) continue;
      const full = heading[1]!;
      const wip = /\((\d+)\)\s*$/.exec(full);
      raws.push({ heading: full, name: full.replace(/\s*\(\d+\)\s*$/, '').trim(), wip: wip ? Number(wip[1]) : undefined, line: i });
      continue;
    }
    const card = CARD.exec(line);
    if (!card || archived || raws.length === 0) continue;
    let end = i + 1;
    while (end < lines.length && /^[ \t]+\S/.test(lines[end]!.text)) end += 1;
    const cardLines = lines.slice(i, end).map((l) => l.text);
    cards.push({ first: i, end, checked: card[1] !== ' ', lines: cardLines, hash: '' });
    cardColumn.push(raws.length - 1);
    i = end - 1;
  }
  const ids = uniqueColumnIds(raws.map((r) => columnIdOf(r.name)));
  const columns: RawColumn[] = raws.map((r, index) => ({ ...r, id: ids[index]! }));
  const withColumns: RawCard[] = cards.map((c, index) => {
    const column = columns[cardColumn[index]!]!.id;
    return { ...c, column, hash: cardHash(c.lines, column) };
  });
  return { text, lines, columns, cards: withColumns, eol: text.includes('\r\n') ? '\r\n' : '\n' };
}

function slug(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .toLowerCase();
}

interface CardData {
  readonly title: string;
  readonly link: string | undefined;
  readonly tags: string[];
  readonly priority: string | undefined;
  readonly id: string | undefined;
  readonly deps: string[];
  readonly parent: string | undefined;
  readonly assignee: string | undefined;
  readonly completedMs: number | undefined;
}

const ASSIGNEE = /(^|\s)@([A-Za-z0-9._-]+)(?=\s|$)/;

function readCard(lines: readonly string[]): CardData {
  const first = CARD.exec(lines[0]!)![2]!;
  const all = [first, ...lines.slice(1).map((l) => l.trim())].join(' ');
  let title: string | undefined;
  let link: string | undefined;
  const wiki = /\[\[([^\]|]+)(?:\|([^\]]+))?\]\]/.exec(first);
  const md = /\[((?:[^\]\\]|\\.)+)\]\(([^)]+)\)/.exec(first);
  if (wiki) {
    link = wiki[1]!.trim();
    if (extname(link) === '') link += '.md';
    title = (wiki[2] ?? basename(wiki[1]!)).trim();
  } else if (md && /\.md$/i.test(md[2]!.replace(/#.*$/, ''))) {
    try {
      link = decodeURIComponent(md[2]!.replace(/#.*$/, ''));
    } catch {
      link = md[2]!;
    }
    title = md[1]!.replace(/\\(.)/g, '$1').trim();
  }
  // Tokens are read outside links: `[[Fix @agent login]]` names a note, not an assignee.
  const unlink = (text: string): string => text.replace(/\[\[[^\]]*\]\]/g, ' ').replace(/\[(?:[^\]\\]|\\.)+\]\([^)]*\)/g, ' ');
  const plainAll = unlink(all);
  const plainFirst = unlink(first);
  const token = (re: RegExp): string | undefined => {
    const value = re.exec(plainAll)?.[1];
    return value === undefined || value === '' ? undefined : value;
  };
  const tags = [...plainAll.matchAll(/(?:^|\s)#([^\s#]+)/g)].map((m) => m[1]!);
  const done = /✅\s*(\d{4}-\d{2}-\d{2})/.exec(all);
  const stripped = first
    .replace(/(?:^|\s)#[^\s#]+/g, ' ')
    .replace(/(?:^|\s)(?:prio|priority|id|dep|depends|parent):\S*/g, ' ')
    .replace(ASSIGNEE, ' ')
    .replace(/@@?\{[^}]*\}/g, ' ')
    .replace(/✅\s*\d{4}-\d{2}-\d{2}/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  const deps = (token(/(?:^|\s)(?:dep|depends):(\S*)/) ?? '').split(',').filter((d) => d !== '');
  return {
    title: title ?? stripped,
    link,
    tags,
    priority: token(/(?:^|\s)(?:prio|priority):(\S*)/),
    id: token(/(?:^|\s)id:(\S*)/),
    deps,
    parent: token(/(?:^|\s)parent:(\S*)/),
    assignee: ASSIGNEE.exec(plainFirst)?.[2],
    completedMs: done ? parseTimestampMs(done[1]!) : undefined,
  };
}

/** Resolves a linked note, trying each path segment case-insensitively when the exact path does not exist. */
async function findNote(from: string, link: string): Promise<string | undefined> {
  const exact = resolve(from, link);
  try {
    await stat(exact);
    return exact;
  } catch {
    // try case-insensitively
  }
  let at = resolve(from);
  for (const part of link.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      at = dirname(at);
      continue;
    }
    let names: string[];
    try {
      names = await readdir(at);
    } catch {
      return undefined;
    }
    const match = names.find((n) => n === part) ?? names.find((n) => n.toLowerCase() === part.toLowerCase());
    if (match === undefined) return undefined;
    at = join(at, match);
  }
  return at;
}

interface ObsidianBoard {
  readonly boardPath: string;
  readonly boardDir: string;
  readonly board: ParsedBoard;
  readonly config: BoardConfig;
  /** sha256 (hex) of the board file's bytes. */
  readonly hash: string;
}

async function readBoard(dir: string, root: string, options: LoadBoardOptions): Promise<ObsidianBoard> {
  const found = await findBoard(dir, options);
  if (!found) {
    throw new BoardConfigError({ path: resolve(dir), line: 0, reason: "no Obsidian Kanban board (a note with 'kanban-plugin: board' frontmatter) found", displayPath: displayPath(root, resolve(dir)) });
  }
  const { boardPath, boardDir } = found;
  const shown = displayPath(root, boardPath);
  const fail = (line: number, reason: string, field?: string, cause?: unknown): never => {
    throw new BoardConfigError({ path: boardPath, line, field, reason, displayPath: shown }, cause === undefined ? undefined : { cause });
  };
  let bytes: Buffer;
  try {
    bytes = await readFile(boardPath);
  } catch (error) {
    return fail(0, `cannot read the board: ${(error as Error).message}`, undefined, error);
  }
  if (bytes.length > MAX_TASK_FILE_BYTES) fail(0, `the board is ${bytes.length} bytes; at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB) are read`);
  if (firstInvalidUtf8(bytes) !== -1) fail(0, 'not valid UTF-8');
  const board = parseBoardText(decodeUtf8(bytes));
  if ('reason' in board) return fail(board.line, board.reason);
  if (board.columns.length === 0) fail(0, "the board has no '## Column' headings");
  const columns: BoardColumn[] = board.columns.map((c) => ({ id: c.id, name: c.name, value: c.heading, ...(c.wip === undefined ? {} : { wip: c.wip }) }));
  const resolver = statusResolver(columns, options.mapping);
  if (isMappingProblem(resolver)) {
    const inMapping = mappingFileError(resolver, options.mapping);
    if (inMapping) throw inMapping;
    return fail(0, resolver.reason, resolver.field);
  }
  const mapping = options.mapping ?? {};
  const config: BoardConfig = {
    name: basename(boardPath, '.md'),
    columns,
    roles: resolver.roles,
    priorities: MAPPED_PRIORITIES,
    defaultPriority: 'normal',
    ...(mapping.wipPerAgent === undefined ? {} : { wipPerAgent: mapping.wipPerAgent }),
    parentDoneWhenSubtasksDone: mapping.parentDoneWhenSubtasksDone ?? true,
  };
  return { boardPath, boardDir, board, config, hash: sha256Hex(bytes) };
}

async function load(dir: string, options: LoadBoardOptions = {}): Promise<BoardSnapshot> {
  const guess = resolve(dir);
  const root = options.displayRoot === undefined ? dirname(guess) : resolve(options.displayRoot);
  const { boardPath, boardDir, board, config, hash } = await readBoard(dir, root, options);
  const realBoard = await realpath(boardDir);
  const shownBoard = displayPath(root, boardPath);
  const results = await mapConcurrent(board.cards, async (card): Promise<{ task: Task; line: number } | TaskFileError> => {
    const line = card.first + 1;
    const fail = (reason: string, field?: string): TaskFileError => new TaskFileError({ path: boardPath, line, field, reason, displayPath: shownBoard });
    const data = readCard(card.lines);
    let note: FrontmatterFields | undefined;
    let notePath: string | undefined;
    let noteBody: string | undefined;
    if (data.link !== undefined) {
      const candidate = await findNote(dirname(boardPath), data.link);
      if (candidate !== undefined && isInside(realBoard, await realpath(candidate).catch(() => candidate))) {
        const bytes = await readBoardFile(candidate, realBoard, root);
        if (bytes instanceof TaskFileError) return bytes;
        notePath = candidate;
        const text = firstInvalidUtf8(bytes) === -1 ? decodeUtf8(bytes) : undefined;
        if (text === undefined) return new TaskFileError({ path: candidate, line: 0, reason: 'not valid UTF-8', displayPath: displayPath(root, candidate) });
        if (!isFrontmatterProblem(findFrontmatter(text))) {
          try {
            note = FrontmatterFields.parse(candidate, bytes, displayPath(root, candidate));
          } catch (error) {
            if (error instanceof TaskFileError) return error;
            throw error;
          }
        } else {
          noteBody = text;
        }
      }
    }
    try {
      const noteId = note?.text('id') ?? note?.text('uuid') ?? undefined;
      const id = data.id ?? noteId ?? slug(data.link !== undefined ? basename(data.link, extname(data.link)) : data.title);
      if (data.title === '' && data.link === undefined) return fail('an empty card: it has no title');
      if (!ID_PATTERN.test(id)) return fail(`the card's id '${id}' must be letters, digits, '.', '_' or '-'`, 'id');
      let priority = config.defaultPriority;
      const priorityValue = data.priority ?? note?.text('priority') ?? undefined;
      if (priorityValue !== undefined && priorityValue !== null && priorityValue !== '') {
        const mapped = mapPriority(priorityValue, options.mapping);
        if (mapped === undefined) return fail(`priority '${priorityValue}' must be one of P0, P1, P2, P3, low, normal, high, urgent`, 'priority');
        priority = mapped;
      }
      const labels = [...new Set([...data.tags, ...(note?.list('labels') ?? []), ...(note?.list('tags') ?? [])])];
      const capabilities = [...new Set([...(note?.list('capabilities') ?? []), ...capabilitiesFromTags(labels, options.mapping)])];
      const dependsOn = [...new Set([...data.deps, ...(note?.list('depends_on') ?? [])])];
      const parent = data.parent ?? note?.text('parent') ?? undefined;
      const path = notePath ?? boardPath;
      const task: Task = {
        id,
        title: data.title !== '' ? data.title : basename(data.link!, '.md'),
        status: card.column,
        priority,
        priorityRank: MAPPED_PRIORITIES.indexOf(priority),
        labels,
        capabilities,
        assignee: data.assignee ?? null,
        dependsOn,
        ...(data.completedMs === undefined ? {} : { completedMs: data.completedMs }),
        ...(parent === undefined || parent === null || parent === '' ? {} : { parentTaskId: parent }),
        body: note?.body ?? noteBody ?? card.lines.slice(1).map((l) => l.trim()).join('\n'),
        fields: { ...(note?.fields ?? {}), card: card.lines.join('\n') },
        path,
        relativePath: displayPath(boardDir, path),
        hash: card.hash,
        card: { boardPath, line, checked: card.checked },
      };
      return { task, line };
    } catch (error) {
      if (error instanceof TaskFileError) return error;
      throw error;
    }
  });
  const tasks: Task[] = [];
  const errors: TaskFileError[] = [];
  const first = new Map<string, number>();
  for (const result of results) {
    if (result instanceof TaskFileError) {
      errors.push(result);
      continue;
    }
    const earlier = first.get(result.task.id);
    if (earlier !== undefined) {
      errors.push(new TaskFileError({ path: boardPath, line: result.line, field: 'id', reason: `id '${result.task.id}' is already used by the card on line ${earlier}`, displayPath: shownBoard }));
      continue;
    }
    first.set(result.task.id, result.line);
    tasks.push(result.task);
  }
  return { dir: boardDir, format: 'obsidian', configPath: boardPath, config, tasks, errors, configHash: hash, ...(options.mapping ? { mapping: options.mapping } : {}) };
}

/** The span of the ` @name` token on a card line (with its leading blank), outside links. */
function assigneeToken(line: string): { start: number; end: number } | undefined {
  const links = [...line.matchAll(/\[\[[^\]]*\]\]|\[(?:[^\]\\]|\\.)+\]\([^)]*\)/g)].map((m) => [m.index, m.index + m[0].length] as const);
  for (const m of line.matchAll(/(^|[ \t])@([A-Za-z0-9._-]+)(?=[ \t]|$)/g)) {
    const start = m.index;
    if (links.some(([a, b]) => start >= a && start < b)) continue;
    return { start, end: start + m[0].length };
  }
  return undefined;
}

/**
 * Applies owned-field changes to a card's lines: the checkbox follows the done column
 * (`[x]` there, `[ ]` elsewhere) when the status changes; `assignee` replaces, adds or (null)
 * removes the `@name` token on the first line; `completed` adds `✅ yyyy-mm-dd` (UTC) when the
 * card has none. `result`, `started` and `updated` have no place on a card and are not written.
 */
export function rewriteCard(lines: readonly string[], changes: OwnedFieldChanges, done: boolean | undefined): string[] {
  let first = lines[0]!;
  if (done !== undefined) first = first.replace(/^- \[[ xX]\]/, done ? '- [x]' : '- [ ]');
  if (changes.assignee !== undefined) {
    const at = assigneeToken(first);
    if (changes.assignee === null) {
      if (at) first = (first.slice(0, at.start) + first.slice(at.end)).replace(/[ \t]+$/, '');
    } else if (at) first = `${first.slice(0, at.start)} @${changes.assignee}${first.slice(at.end)}`;
    else first = `${first.replace(/[ \t]+$/, '')} @${changes.assignee}`;
  }
  if (typeof changes.completed === 'string' && !/✅\s*\d{4}-\d{2}-\d{2}/.test(lines.join('\n'))) {
    first = `${first.replace(/[ \t]+$/, '')} ✅ ${new Date(changes.completed).toISOString().slice(0, 10)}`;
  }
  return [first, ...lines.slice(1)];
}

async function update(snapshot: BoardSnapshot, task: Task, changes: OwnedFieldChanges, options: UpdateTaskOptions = {}): Promise<UpdateTaskResult> {
  const card = task.card;
  if (!card) throw new TaskUpdateError(task.path, 'not an Obsidian Kanban card');
  const boardPath = card.boardPath;
  checkChanges(boardPath, changes);
  for (const key of Object.keys(changes)) if (!/^(status|assignee|result|started|completed|updated)$/.test(key)) throw new TaskUpdateError(boardPath, `'${key}' is not an owned field`, key);
  let target: string;
  let bytes: Buffer;
  try {
    target = await realpath(boardPath);
    bytes = await readFile(target);
  } catch (error) {
    throw new TaskUpdateError(boardPath, `cannot read the board: ${(error as Error).message}`, undefined, { cause: error });
  }
  if (firstInvalidUtf8(bytes) !== -1) throw new TaskUpdateError(boardPath, 'cannot update: the board is not valid UTF-8');
  const board = parseBoardText(decodeUtf8(bytes));
  if ('reason' in board) throw new TaskUpdateError(boardPath, `cannot update: line ${board.line}: ${board.reason}`);
  const expected = options.expectedHash ?? task.hash;
  const matches = board.cards.filter((c) => c.hash === expected);
  const found = matches.find((c) => c.first + 1 === card.line) ?? matches[0];
  if (!found) {
    const atLine = board.cards.find((c) => c.first + 1 === card.line);
    throw new TaskConflictError(`${boardPath}:${card.line}`, expected, atLine?.hash ?? 'no card at that line');
  }
  const to = changes.status ?? found.column;
  const column = board.columns.find((c) => c.id === to);
  if (!column) throw new TaskUpdateError(boardPath, `'status' names no column of the board: '${to}'`, 'status');
  const moving = to !== found.column;
  const doneColumn = snapshot.config.roles.done;
  const newLines = rewriteCard(found.lines, changes, moving ? to === doneColumn : undefined);
  const newHash = cardHash(newLines, to);
  if (newHash === found.hash) return { hash: found.hash };

  const { lines, text, eol } = board;
  const block = newLines.join(eol) + eol;
  const cut = { start: lines[found.first]!.start, end: lines[found.end - 1]!.next };
  let insertAt: number;
  if (!moving) insertAt = cut.start;
  else {
    const inColumn = board.cards.filter((c) => c.column === to);
    const last = inColumn[inColumn.length - 1];
    if (last) insertAt = lines[last.end - 1]!.next;
    else {
      const heading = lines[column.line]!;
      const after = lines[column.line + 1];
      insertAt = after !== undefined && after.text.trim() === '' ? after.next : heading.next;
    }
  }
  // The block's last line may lack a line ending at the end of the file.
  const needsEol = insertAt === text.length && text.length > 0 && !text.endsWith('\n');
  const piece = (needsEol ? eol : '') + block;
  let out: string;
  if (insertAt <= cut.start) out = text.slice(0, insertAt) + piece + text.slice(insertAt, cut.start) + text.slice(cut.end);
  else out = text.slice(0, cut.start) + text.slice(cut.end, insertAt) + piece + text.slice(insertAt);
  if (!moving) out = text.slice(0, cut.start) + block + text.slice(cut.end);
  const check = parseBoardText(out);
  if ('reason' in check || !check.cards.some((c) => c.hash === newHash) || check.cards.length !== board.cards.length) {
    throw new TaskUpdateError(boardPath, 'cannot update: the rewritten board would not read back as intended; the board was left as it was');
  }
  await replaceAtomically(boardPath, target, Buffer.from(out, 'utf8'), sha256Hex(bytes));
  return { hash: newHash };
}

/** The id a card's lines give when its note (if any) names none: its `id:` token, else a slug of its linked note's name or its title. */
function cardIdOf(data: CardData): string {
  return data.id ?? slug(data.link !== undefined ? basename(data.link, extname(data.link)) : data.title);
}

/** A relative path as a markdown link target: each segment percent-encoded, `(` `)` `!` `*` `'` too (`../tasks/Fix%20login.md`). */
function linkTarget(path: string): string {
  return path
    .split(sep)
    .map((part) => encodeURIComponent(part).replace(/[()!*']/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** The folder most of the board's linked notes are in (inside the board folder), else the board file's folder. */
async function notesFolder(board: ParsedBoard, boardPath: string, boardDir: string): Promise<string> {
  const counts = new Map<string, number>();
  for (const card of board.cards) {
    const link = readCard(card.lines).link;
    if (link === undefined) continue;
    const folder = dirname(resolve(dirname(boardPath), link));
    if (folder !== boardDir && !isInside(boardDir, folder)) continue;
    counts.set(folder, (counts.get(folder) ?? 0) + 1);
  }
  let best: string | undefined;
  for (const [folder, count] of counts) if (best === undefined || count > counts.get(best)!) best = folder;
  if (best !== undefined) {
    const exists = await stat(best).then((info) => info.isDirectory(), () => false);
    if (exists) return best;
  }
  return dirname(boardPath);
}

/**
 * Creates a card on an Obsidian Kanban board, as the plugin writes one: a `- [ ] ` line appended
 * to the column (after its last card, or under its heading), with the labels and capabilities as
 * `#tags`, `prio:P0`…`P3` for a priority, `dep:a,b` for dependencies, and `id:x` when the id would
 * not otherwise follow from the card. The card is plain text (`- [ ] Fix the login form #bug`) when
 * its title reads back as it is and there is no body; else it links a new note named after the title
 * (`- [ ] [Fix the login form](notes/Fix%20the%20login%20form.md)`), written in the folder most of
 * the board's notes are in, holding the body (and, in its frontmatter, capabilities no tag
 * expresses and the parent; a plain card names its parent with a `parent:<id>` token). The id is a slug of the title, made unique on the board. Every other byte of the board
 * file is kept; the board file is replaced atomically.
 */
async function create(snapshot: BoardSnapshot, draft: TaskDraft, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
  const boardPath = snapshot.configPath;
  const where = boardPath ?? snapshot.dir;
  if (boardPath === undefined) throw new TaskCreateError(where, 'the snapshot names no board file (configPath)');
  const checked = checkDraft(snapshot, draft, where);
  const mapping = snapshot.mapping;
  for (const label of checked.labels) {
    if (/[\s#[\]()]/.test(label)) throw new TaskCreateError(where, `label '${label}' cannot be an Obsidian tag: no spaces, '#', brackets or parentheses`, 'labels');
  }
  const tags = [...checked.labels];
  const noteCapabilities: string[] = [];
  for (const capability of checked.capabilities) {
    const tag = capabilitiesFromTags([capability], mapping).includes(capability)
      ? capability
      : Object.entries(mapping?.capabilities ?? {}).find(([name, list]) => list.includes(capability) && !/[\s#[\]()]/.test(name))?.[0];
    if (tag === undefined) noteCapabilities.push(capability);
    else if (!tags.includes(tag)) tags.push(tag);
  }
  const priority = checked.priority && prioritySpelling(snapshot, checked.priority, ['P0', 'P1', 'P2', 'P3'], where);
  const tokens = [...tags.map((t) => `#${t}`), ...(priority === undefined ? [] : [`prio:${priority}`]), ...(checked.dependsOn.length === 0 ? [] : [`dep:${checked.dependsOn.join(',')}`])];
  const parentToken = checked.parent === undefined ? [] : [`parent:${checked.parent}`];

  return withCreateLock(snapshot.dir, options, async () => {
    let target: string;
    let bytes: Buffer;
    try {
      target = await realpath(boardPath);
      bytes = await readFile(target);
    } catch (error) {
      throw new TaskCreateError(where, `cannot read the board: ${(error as Error).message}`, undefined, { cause: error });
    }
    const hash = sha256Hex(bytes);
    if (snapshot.configHash !== undefined && hash !== snapshot.configHash) throw new TaskConflictError(boardPath, snapshot.configHash, hash);
    if (firstInvalidUtf8(bytes) !== -1) throw new TaskCreateError(where, 'the board is not valid UTF-8');
    const board = parseBoardText(decodeUtf8(bytes));
    if ('reason' in board) throw new TaskCreateError(where, `cannot add a card: line ${board.line}: ${board.reason}`);
    const column = board.columns.find((c) => c.id === checked.column.id);
    if (!column) throw new TaskCreateError(where, `'column' names no column of the board: '${checked.column.id}'`, 'column');

    const taken = new Set(snapshot.tasks.map((t) => t.id));
    for (const card of board.cards) taken.add(cardIdOf(readCard(card.lines)));
    const natural = slug(checked.title);
    const id = firstFree(natural !== '' && natural.length <= 60 ? natural : slugOf(checked.title) || 'card', (candidate) => taken.has(candidate));

    const plain = `- [ ] ${checked.title}${[...tokens, ...parentToken].map((t) => ` ${t}`).join('')}`;
    const plainData = readCard([plain]);
    const needsNote = checked.body !== '' || noteCapabilities.length > 0 || plainData.link !== undefined || plainData.title !== checked.title;
    let notePath: string | undefined;
    /** The parent the new note's frontmatter gives, read back from its bytes. */
    let noteParent: string | undefined;
    let line: string;
    if (needsNote) {
      const folder = await notesFolder(board, boardPath, snapshot.dir);
      const names = new Set(await readdir(folder).catch(() => [] as string[]));
      const fields = [
        ...(noteCapabilities.length === 0 ? [] : [`capabilities: [${noteCapabilities.map(doubleQuoted).join(', ')}]`]),
        ...(checked.parent === undefined ? [] : [`parent: ${doubleQuoted(checked.parent)}`]),
      ];
      const frontmatter = fields.length === 0 ? '' : `---\n${fields.join('\n')}\n---\n`;
      const note = Buffer.from(frontmatter + withFinalNewline(checked.body), 'utf8');
      if (fields.length > 0) noteParent = FrontmatterFields.parse(join(folder, 'new note.md'), note, 'the new note').text('parent') ?? undefined;
      const base = titleFileName(checked.title) || id;
      for (;;) {
        const name = `${firstFree(base, (candidate) => names.has(`${candidate}.md`) || names.has(`${candidate}.MD`), ' ')}.md`;
        const path = join(folder, name);
        if (await writeNewFile(path, note, where)) {
          notePath = path;
          break;
        }
        names.add(name);
      }
      const escaped = checked.title.replace(/[\\[\]]/g, '\\$&');
      line = `- [ ] [${escaped}](${linkTarget(relative(dirname(boardPath), notePath))})${tokens.map((t) => ` ${t}`).join('')}`;
    } else {
      line = plain;
    }
    if (cardIdOf(readCard([line])) !== id) line += ` id:${id}`;

    try {
      const out = withCard(board, column.line, checked.column.id, line);
      const check = parseBoardText(out);
      const added = 'reason' in check ? undefined : check.cards.find((c) => c.lines.length === 1 && c.lines[0] === line && c.column === checked.column.id);
      const others = 'reason' in check ? [] : check.cards.filter((c) => c !== added).map((c) => c.hash);
      const data = added && readCard(added.lines);
      const tagCapabilities = capabilitiesFromTags(data?.tags ?? [], mapping);
      const bad =
        !added || others.length !== board.cards.length || others.some((h, i) => h !== board.cards[i]!.hash)
          ? 'column'
          : data!.title !== checked.title
            ? 'title'
            : cardIdOf(data!) !== id
              ? 'id'
              : !checked.capabilities.every((c) => tagCapabilities.includes(c) || noteCapabilities.includes(c))
                ? 'capabilities'
                : checked.priority !== undefined && mapPriority(data!.priority ?? '', mapping) !== checked.priority.value
                  ? 'priority'
                  : data!.deps.join(',') !== checked.dependsOn.join(',')
                    ? 'dependsOn'
                    : (data!.parent ?? noteParent) !== checked.parent
                      ? 'parent'
                      : undefined;
      if (bad !== undefined) throw new TaskCreateError(where, `the new card would not read back with the same '${bad}'; nothing was written`, bad);
      await replaceAtomically(boardPath, target, Buffer.from(out, 'utf8'), hash);
    } catch (error) {
      if (notePath !== undefined) await unlink(notePath).catch(() => undefined);
      if (error instanceof TaskUpdateError) throw new TaskCreateError(where, error.reason, undefined, { cause: error });
      throw error;
    }
    return { id, path: notePath ?? boardPath };
  });
}

/** The board text with `line` added to the column whose heading is on line index `headingLine`: after its last card, else under its heading (after one blank line). */
function withCard(board: ParsedBoard, headingLine: number, columnId: string, line: string): string {
  const { lines, text, eol } = board;
  const inColumn = board.cards.filter((c) => c.column === columnId);
  const last = inColumn[inColumn.length - 1];
  let at: number;
  if (last) at = lines[last.end - 1]!.next;
  else {
    const heading = lines[headingLine]!;
    const after = lines[headingLine + 1];
    at = after !== undefined && after.text.trim() === '' ? after.next : heading.next;
  }
  const needsEol = at === text.length && text.length > 0 && !text.endsWith('\n');
  return text.slice(0, at) + (needsEol ? eol : '') + line + eol + text.slice(at);
}

/** The Obsidian Kanban format (see the module comment). */
export const obsidianFormat: BoardFormat = {
  name: 'obsidian',
  detect: async (dir) => (await findBoard(dir, {})) !== undefined,
  load,
  update,
  create,
};
