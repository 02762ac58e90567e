/** `warren board import`: a board of any format as normalized JSON, or written out as a Warren board. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { BoardImportError } from './errors.js';
import { parseBoardConfig } from './config.js';
import { parseTaskFile } from './task.js';
import type { BoardSnapshot, Task } from './types.js';

/** A task as `normalizedTasks` gives it: JSON-safe, timestamps as ISO 8601 strings. */
export interface NormalizedTask {
  readonly id: string;
  readonly title: string;
  readonly status: string;
  readonly priority: string;
  readonly labels: string[];
  readonly capabilities: string[];
  readonly assignee: string | null;
  readonly dependsOn: string[];
  readonly parentTaskId: string | null;
  readonly created: string | null;
  readonly updated: string | null;
  /** Relative to the board folder. */
  readonly source: string;
  readonly body: string;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** The board's tasks in Warren's terms (column ids, Warren priorities, capabilities), JSON-safe. */
export function normalizedTasks(snapshot: Pick<BoardSnapshot, 'tasks'>): NormalizedTask[] {
  return snapshot.tasks.map((t: Task) => ({
    id: t.id,
    title: t.title,
    status: t.status,
    priority: t.priority,
    labels: [...t.labels],
    capabilities: [...t.capabilities],
    assignee: t.assignee,
    dependsOn: [...t.dependsOn],
    parentTaskId: t.parentTaskId ?? null,
    created: iso(t.createdMs),
    updated: iso(t.updatedMs),
    source: t.relativePath,
    body: t.body,
  }));
}

/** The `board.yaml` text of a Warren board with the snapshot's columns, roles, priorities and rules. */
export function warrenBoardYaml(snapshot: Pick<BoardSnapshot, 'config'>): string {
  const { config } = snapshot;
  const doc: Record<string, unknown> = {
    name: config.name,
    columns: config.columns.map((c) => (c.wip === undefined ? { id: c.id, name: c.name } : { id: c.id, name: c.name, wip: c.wip })),
    roles: { ...config.roles },
    priorities: [...config.priorities],
    default_priority: config.defaultPriority,
  };
  if (config.transitions?.enabled) {
    const map: Record<string, string[]> = {};
    for (const rule of config.transitions.rules) {
      for (const from of rule.from) map[from] = [...new Set([...(map[from] ?? []), ...rule.to])];
    }
    doc['transitions'] = map;
  }
  if (config.wipPerAgent !== undefined) doc['wip_per_agent'] = config.wipPerAgent;
  return stringify(doc);
}

/** The Warren task file text for one task (frontmatter + the body as it was). */
export function warrenTaskText(task: Task): string {
  const fields: Record<string, unknown> = {
    id: task.id,
    title: task.title,
    status: task.status,
    priority: task.priority,
    capabilities: [...task.capabilities],
    labels: [...task.labels],
    assignee: task.assignee,
    depends_on: [...task.dependsOn],
  };
  if (task.parentTaskId !== undefined) fields['parent'] = task.parentTaskId;
  if (task.createdMs !== undefined) fields['created'] = new Date(task.createdMs).toISOString();
  if (task.updatedMs !== undefined) fields['updated'] = new Date(task.updatedMs).toISOString();
  fields['imported_from'] = task.relativePath;
  return `---\n${stringify(fields)}---\n${task.body.startsWith('\n') ? task.body.slice(1) : task.body}`;
}

/**
 * Writes the snapshot as a new Warren board in `outDir` (`board.yaml` and `tasks/<id>.md`; each
 * task keeps its body and records `imported_from`). Every file is checked to read back with Warren's
 * own parser before anything is written. The source board is not touched.
 *
 * @returns the absolute paths written.
 * @throws {BoardImportError} when `outDir` already holds a `board.yaml` or a `tasks` folder with
 *   files, when a task would not read back, or when a write fails.
 */
export async function importToWarrenBoard(snapshot: BoardSnapshot, outDir: string): Promise<string[]> {
  const dir = resolve(outDir);
  const boardYaml = warrenBoardYaml(snapshot);
  const configPath = join(dir, 'board.yaml');
  let config;
  try {
    config = parseBoardConfig(boardYaml, configPath);
  } catch (error) {
    throw new BoardImportError(configPath, `the board config would not read back: ${(error as Error).message}`, { cause: error });
  }
  const files = snapshot.tasks.map((task) => {
    const path = join(dir, 'tasks', `${task.id}.md`);
    const text = warrenTaskText(task);
    try {
      parseTaskFile(path, Buffer.from(text, 'utf8'), config, dir);
    } catch (error) {
      throw new BoardImportError(path, `task '${task.id}' would not read back: ${(error as Error).message}`, { cause: error });
    }
    return { path, text };
  });
  await mkdir(join(dir, 'tasks'), { recursive: true });
  const written: string[] = [];
  try {
    await writeFile(configPath, boardYaml, { flag: 'wx' });
    written.push(configPath);
    for (const file of files) {
      await writeFile(file.path, file.text, { flag: 'wx' });
      written.push(file.path);
    }
  } catch (error) {
    const path = (error as NodeJS.ErrnoException).path ?? dir;
    throw new BoardImportError(path, `cannot write the imported board: ${(error as Error).message}`, { cause: error });
  }
  return written;
}
