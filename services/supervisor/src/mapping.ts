import { z } from 'zod';
import { ConfigError } from '@warren/core';
import type { BoardMapping } from '@warren/kanban';
import { detectBoardFormat, lineOf, mappingOnWarrenBoard, parseYamlSource, readSmallFile, type BoardFormatName } from '@warren/kanban';

const names = z.record(z.string(), z.string());

/**
 * The schema of a board mapping file (YAML or JSON), the `--mapping` option: how another tool's
 * statuses, priorities, tags and labels map onto Warren's columns, priorities and capabilities.
 * The fields are `@warren/kanban`'s `BoardMapping`; unknown keys are errors.
 */
export const MappingFile = z
  .object({
    statuses: names.optional(),
    roles: z
      .object({ ready: z.string(), in_progress: z.string(), done: z.string(), failed: z.string() })
      .partial()
      .strict()
      .optional(),
    priorities: names.optional(),
    capabilityPrefixes: z.array(z.string().min(1)).optional(),
    capabilities: z.record(z.string(), z.array(z.string().min(1))).optional(),
    parentDoneWhenSubtasksDone: z.boolean().optional(),
    wipPerAgent: z.number().int().min(1).optional(),
    boardFile: z.string().min(1).optional(),
    taskFolders: z.array(z.string().min(1)).optional(),
  })
  .strict();

/**
 * Reads and validates a mapping file: a regular file of at most 1 MiB (a FIFO or a device is
 * refused, not read), UTF-8, YAML or JSON. The mapping keeps its `source` (the path and the line
 * of each key), so that a problem found when it meets the board names this file and line.
 * @throws {ConfigError} naming the file, line and key at fault.
 */
export async function loadMappingFile(path: string): Promise<BoardMapping> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await readSmallFile(path));
  } catch (error) {
    const reason = error instanceof TypeError ? 'it is not valid UTF-8' : (error as Error).message;
    throw new ConfigError(path, `cannot read the mapping file: ${reason}`, { cause: error });
  }
  const source = parseYamlSource(text);
  if (!('doc' in source)) throw new ConfigError(`${path}:${source.line}`, `is not valid YAML or JSON: ${source.message}`);
  const parsed = MappingFile.safeParse(source.value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    throw new ConfigError(`${path}:${lineOf(source, at)}`, `'${at.map(String).join('.')}' ${issue.code === 'unrecognized_keys' ? 'is not a mapping key' : issue.message}`);
  }
  const lines: Record<string, number> = {};
  for (const [key, value] of Object.entries(parsed.data)) {
    lines[key] = lineOf(source, [key]);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const inner of Object.keys(value)) lines[`${key}.${inner}`] = lineOf(source, [key, inner]);
    }
  }
  return { ...(parsed.data as BoardMapping), source: { path, lines } };
}

/**
 * Refuses a mapping given for a Warren board (`--format warren`, or detected): a mapping is for the
 * other formats, and a Warren board's board.yaml names its columns, roles and priorities itself.
 * A board whose format cannot be detected is left to the board loader to report.
 * @throws {BoardConfigError} at the mapping file.
 */
export async function checkMappingApplies(boardDir: string, format: BoardFormatName | undefined, mapping: BoardMapping): Promise<void> {
  let name: BoardFormatName;
  try {
    name = format ?? (await detectBoardFormat(boardDir));
  } catch {
    return;
  }
  if (name === 'warren') throw mappingOnWarrenBoard(boardDir, mapping);
}
