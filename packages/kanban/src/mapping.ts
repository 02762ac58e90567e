/**
 * Mapping another board's statuses, priorities, tags and labels onto Warren's columns, roles,
 * priorities and capabilities (see `BoardMapping` for the rules and the package README for the
 * defaults).
 */
import { BoardConfigError } from './errors.js';
import type { BoardColumn, BoardMapping, BoardRoles } from './types.js';

/** The priorities of boards read through a mapping (Backlog.md, Obsidian, JSON-config), lowest first. */
export const MAPPED_PRIORITIES: readonly string[] = ['low', 'normal', 'high', 'urgent'];

/** Built-in priority spellings (compared by {@link statusKey}) → one of {@link MAPPED_PRIORITIES}. */
const PRIORITY_ALIASES: Readonly<Record<string, string>> = {
  p0: 'urgent', critical: 'urgent', urgent: 'urgent', blocker: 'urgent', highest: 'urgent',
  p1: 'high', high: 'high',
  p2: 'normal', medium: 'normal', normal: 'normal', med: 'normal',
  p3: 'low', p4: 'low', p5: 'low', low: 'low', minor: 'low', lowest: 'low', trivial: 'low',
};

/** For each role, the status keys tried in order when the mapping names no column for it. */
const ROLE_CANDIDATES: Readonly<Record<keyof BoardRoles, readonly string[]>> = {
  ready: ['ready', 'todo', 'next', 'open', 'backlog'],
  in_progress: ['inprogress', 'doing', 'wip', 'started', 'active'],
  done: ['done', 'complete', 'completed', 'closed', 'finished'],
  failed: ['failed', 'error', 'wontdo', 'rejected', 'cancelled', 'canceled', 'blocked'],
};

/**
 * The defaults every mapping starts from. Statuses: none beyond key matching; roles: the first
 * column whose key matches, in order — ready `ready, todo, next, open, backlog`; in_progress
 * `inprogress, doing, wip, started, active`; done `done, complete, completed, closed, finished`;
 * failed `failed, error, wontdo, rejected, cancelled, canceled, blocked`, and when no column
 * matches, the ready column (a failed task goes back to the queue with its result; the supervisor
 * does not retry it until a person edits it). Priorities: `P0/critical/urgent/blocker` → urgent,
 * `P1/high` → high, `P2/medium/normal` → normal, `P3/P4/low/minor` → low. Capability prefixes:
 * `cap:`, `tool:`, `env:`, `role:`.
 */
export const DEFAULT_MAPPING: Required<Pick<BoardMapping, 'capabilityPrefixes' | 'parentDoneWhenSubtasksDone'>> & BoardMapping = {
  capabilityPrefixes: ['cap:', 'tool:', 'env:', 'role:'],
  parentDoneWhenSubtasksDone: true,
};

/**
 * The key a status (or priority) is compared by: NFKC, lower case, a trailing `(n)` dropped, and
 * everything but letters and digits removed. `🟡 In Progress (4)` → `inprogress`; `Won't Do` → `wontdo`.
 */
export function statusKey(value: string): string {
  return value
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\(\s*\d+\s*\)\s*$/u, '')
    .replace(/[^\p{L}\p{N}]+/gu, '');
}

/**
 * A column id made from a status value: lower case, runs of anything but letters and digits become
 * `_`, trimmed; `🟡 In Progress (4)` → `in_progress`, `To Do` → `to_do`. Non-ASCII letters are
 * dropped so that the id matches `[A-Za-z0-9._-]+`; an empty result becomes `column`.
 */
export function columnIdOf(value: string): string {
  const id = value
    .normalize('NFKD')
    .toLowerCase()
    .replace(/\(\s*\d+\s*\)\s*$/u, '')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return id === '' ? 'column' : id;
}

/** Resolves status values to columns for one board and mapping. */
export interface StatusResolver {
  /** The column id for a status value, or undefined when no column has it (an error for the task). */
  readonly resolve: (value: string) => string | undefined;
  /** Column ids by role. */
  readonly roles: BoardRoles;
}

/** Why a mapping does not fit a board (a config error): the message and the mapping key at fault. */
export interface MappingProblem {
  readonly field: string;
  readonly reason: string;
}

/**
 * Builds the status resolver for `columns` (in board order) under `mapping`.
 *
 * @returns the resolver, or the first problem: two columns with the same key, an alias or role
 *   naming no column, or no column for the ready, in_progress or done role.
 */
export function statusResolver(columns: readonly BoardColumn[], mapping: BoardMapping = {}): StatusResolver | MappingProblem {
  const byKey = new Map<string, string>();
  for (const column of columns) {
    for (const name of new Set([column.id, column.value ?? column.id, column.name])) {
      const key = statusKey(name);
      const other = byKey.get(key);
      if (other !== undefined && other !== column.id) {
        return { field: 'columns', reason: `columns '${other}' and '${column.id}' cannot be told apart (both read as '${key}')` };
      }
      byKey.set(key, column.id);
    }
  }
  const aliases = new Map<string, string>();
  for (const [from, to] of Object.entries(mapping.statuses ?? {})) {
    const target = byKey.get(statusKey(to));
    if (target === undefined) return { field: `mapping.statuses.${from}`, reason: `'mapping.statuses' maps '${from}' to '${to}', which is no column (${columns.map((c) => c.value ?? c.id).join(', ')})` };
    aliases.set(statusKey(from), target);
  }
  const resolve = (value: string): string | undefined => {
    const key = statusKey(value);
    return aliases.get(key) ?? byKey.get(key);
  };
  const roles: Partial<Record<keyof BoardRoles, string>> = {};
  for (const role of ['ready', 'in_progress', 'done', 'failed'] as const) {
    const named = mapping.roles?.[role];
    if (named !== undefined) {
      const id = resolve(named);
      if (id === undefined) return { field: `mapping.roles.${role}`, reason: `'mapping.roles.${role}' names '${named}', which is no column (${columns.map((c) => c.value ?? c.id).join(', ')})` };
      roles[role] = id;
      continue;
    }
    const found = ROLE_CANDIDATES[role].map((key) => byKey.get(key)).find((id) => id !== undefined);
    if (found !== undefined) roles[role] = found;
  }
  roles.failed ??= roles.ready;
  for (const role of ['ready', 'in_progress', 'done'] as const) {
    if (roles[role] === undefined) {
      return {
        field: `mapping.roles.${role}`,
        reason: `no column plays the '${role}' role (tried ${ROLE_CANDIDATES[role].join(', ')}); name one in mapping.roles.${role}`,
      };
    }
  }
  return { resolve, roles: roles as BoardRoles };
}

/**
 * The error for a problem with a mapping's own content (`mapping.statuses.*`, `mapping.roles.*`)
 * when the mapping came from a file: at that file and the line of the key at fault. Undefined
 * when the problem is the board's (two columns that read alike) or the mapping has no source.
 */
export function mappingFileError(problem: MappingProblem, mapping: BoardMapping | undefined): BoardConfigError | undefined {
  const source = mapping?.source;
  if (source === undefined || !problem.field.startsWith('mapping.')) return undefined;
  const key = problem.field.slice('mapping.'.length);
  const line = source.lines[key] ?? source.lines[key.split('.')[0]!] ?? 0;
  return new BoardConfigError({ path: source.path, line, field: key, reason: problem.reason.replace(/^'mapping\./, "'") });
}

/** Type guard for {@link statusResolver}'s failure case. */
export function isMappingProblem(value: unknown): value is MappingProblem {
  return typeof value === 'object' && value !== null && 'reason' in value && 'field' in value;
}

/**
 * One of {@link MAPPED_PRIORITIES} for a board's priority value (`mapping.priorities` first, then
 * the built-in spellings), or undefined when the value is unknown (an error for the task).
 */
export function mapPriority(value: string, mapping: BoardMapping = {}): string | undefined {
  const key = statusKey(value);
  for (const [from, to] of Object.entries(mapping.priorities ?? {})) {
    if (statusKey(from) === key && MAPPED_PRIORITIES.includes(to)) return to;
  }
  return PRIORITY_ALIASES[key];
}

/**
 * The capabilities that tags and labels require: each tag (a leading `#` dropped) that starts with
 * one of the capability prefixes is kept as it is (`#tool:codex` → `tool:codex`), and each tag
 * named in `mapping.capabilities` adds the capabilities listed there. Order of first appearance,
 * no duplicates.
 */
export function capabilitiesFromTags(tags: readonly string[], mapping: BoardMapping = {}): string[] {
  const prefixes = mapping.capabilityPrefixes ?? DEFAULT_MAPPING.capabilityPrefixes;
  const out: string[] = [];
  const add = (value: string): void => {
    if (value !== '' && !out.includes(value)) out.push(value);
  };
  for (const raw of tags) {
    const tag = raw.startsWith('#') ? raw.slice(1) : raw;
    if (prefixes.some((prefix) => tag.toLowerCase().startsWith(prefix.toLowerCase()) && tag.length > prefix.length)) add(tag);
    for (const [name, capabilities] of Object.entries(mapping.capabilities ?? {})) {
      if (name === tag || name === raw) capabilities.forEach(add);
    }
  }
  return out;
}
