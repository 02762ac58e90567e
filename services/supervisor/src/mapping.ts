import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '@warren/core';
import type { BoardMapping } from '@warren/kanban';
import { lineOf, parseYamlSource } from '@warren/kanban';

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
 * Reads and validates a mapping file.
 * @throws {ConfigError} naming the file, line and key at fault.
 */
export async function loadMappingFile(path: string): Promise<BoardMapping> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, `cannot read the mapping file: ${(error as Error).message}`, { cause: error });
  }
  const source = parseYamlSource(text);
  if (!('doc' in source)) throw new ConfigError(`${path}:${source.line}`, `is not valid YAML or JSON: ${source.message}`);
  const parsed = MappingFile.safeParse(source.value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    throw new ConfigError(`${path}:${lineOf(source, at)}`, `'${at.map(String).join('.')}' ${issue.code === 'unrecognized_keys' ? 'is not a mapping key' : issue.message}`);
  }
  return parsed.data as BoardMapping;
}
