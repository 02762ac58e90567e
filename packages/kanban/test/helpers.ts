import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BOARD_YAML = `# A test board
name: Test board
columns:
  - { id: backlog, name: Backlog }
  - { id: ready, name: Ready }
  - { id: in_progress, name: In progress, wip: 4 }
  - { id: done, name: Done }
  - { id: failed, name: Failed }
roles:
  ready: ready
  in_progress: in_progress
  done: done
  failed: failed
priorities: [low, normal, high, urgent]
default_priority: normal
`;

/** A temporary folder holding `kanban/` (so messages read `kanban/tasks/…`); remove it with `cleanup`. */
export interface TempBoard {
  readonly root: string;
  readonly dir: string;
  task(name: string, content: string | Buffer): Promise<string>;
  cleanup(): Promise<void>;
}

export async function makeBoard(boardYaml: string = BOARD_YAML): Promise<TempBoard> {
  const root = await mkdtemp(join(tmpdir(), 'warren-kanban-'));
  const dir = join(root, 'kanban');
  await mkdir(join(dir, 'tasks'), { recursive: true });
  await writeFile(join(dir, 'board.yaml'), boardYaml);
  return {
    root,
    dir,
    async task(name, content) {
      const path = join(dir, 'tasks', name);
      await writeFile(path, content);
      return path;
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** A minimal valid task file. */
export function taskText(id: string, extra = '', body = 'Body.\n'): string {
  return `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [shell]\n${extra}---\n${body}`;
}
