import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTask, loadBoard, TaskCreateError } from '../src/index.js';
import { copyFixture, OWN_FIXTURES } from './formats-helpers.js';

let root: string;
const boards = new Map<string, { dir: string; errors: number }>();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'warren-create-property-'));
  const warren = join(root, 'warren');
  await mkdir(warren);
  await writeFile(
    join(warren, 'board.yaml'),
    'name: p\ncolumns:\n  - { id: ready, name: Ready }\n  - { id: doing, name: Doing }\n  - { id: done, name: Done }\nroles: { ready: ready, in_progress: doing, done: done, failed: ready }\n',
  );
  const backlog = join(root, 'backlog');
  await mkdir(join(backlog, 'tasks'), { recursive: true });
  await writeFile(join(backlog, 'config.yml'), 'project_name: "p"\ndefault_status: "To Do"\nstatuses: ["To Do", "In Progress", "Done"]\ntask_prefix: "task"\n');
  const obsidian = await copyFixture(join(OWN_FIXTURES, 'obsidian'), 'vault');
  const json = await copyFixture(join(OWN_FIXTURES, 'json-config'), 'json');
  for (const [name, dir] of [
    ['warren', warren],
    ['backlog-md', backlog],
    ['obsidian', obsidian.dir],
    ['json-config', json.dir],
  ] as const) {
    boards.set(name, { dir, errors: (await loadBoard(dir)).errors.length });
  }
  boards.set('cleanup', { dir: obsidian.root, errors: 0 });
  boards.set('cleanup-2', { dir: json.root, errors: 0 });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  for (const key of ['cleanup', 'cleanup-2']) {
    const entry = boards.get(key);
    if (entry) await rm(entry.dir, { recursive: true, force: true });
  }
});

/** Creates a task titled `title` and returns the title the reloaded board reads, or the refusal. */
async function roundTrip(format: string, title: string): Promise<{ title: string | undefined } | TaskCreateError> {
  const { dir, errors } = boards.get(format)!;
  let id: string;
  try {
    id = (await createTask(dir, { title })).id;
  } catch (error) {
    if (error instanceof TaskCreateError) return error;
    throw error;
  }
  const after = await loadBoard(dir);
  expect(after.errors).toHaveLength(errors);
  return { title: after.tasks.find((t) => t.id === id)?.title };
}

/** Any text at all: every code point but half surrogates. */
const anyText = fc.string({ unit: 'binary', maxLength: 40 });

/** Text of any script made a valid title: controls and line breaks made blanks, a letter somewhere, at most 200 code points. */
const validTitle = fc
  .tuple(anyText, fc.constantFrom('a', 'é', '語', 'Ж', '٣', '🙂'), anyText)
  .map(([a, letter, b]) => [...`${a}${letter}${b}`.replace(/[\p{Cc}\p{Zl}\p{Zp}]/gu, ' ')].slice(0, 200).join(''))
  .filter((t) => /[\p{L}\p{N}\p{S}]/u.test(t.trim()));

describe.each(['warren', 'backlog-md', 'obsidian', 'json-config'])('createTask titles on a %s board (property)', (format) => {
  it('a title of any script, symbols and punctuation loads back exactly (trimmed)', async () => {
    await fc.assert(
      fc.asyncProperty(validTitle, async (title) => {
        const result = await roundTrip(format, title);
        expect(result).not.toBeInstanceOf(TaskCreateError);
        expect((result as { title: string }).title).toBe(title.trim());
      }),
      { numRuns: 25 },
    );
  });

  it('any text is either refused as a bad title or loads back exactly (trimmed)', async () => {
    await fc.assert(
      fc.asyncProperty(anyText, async (title) => {
        const result = await roundTrip(format, title);
        if (result instanceof TaskCreateError) expect(result.field).toBe('title');
        else expect(result.title).toBe(title.trim());
      }),
      { numRuns: 25 },
    );
  });
});
