import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { loadWarrenBoard } from './load.js';
import type { BoardFormat } from './types.js';
import { updateTaskFile } from './update.js';

/**
 * Warren's own board format: `<board>/board.yaml` plus `<board>/tasks/*.md` with YAML frontmatter
 * (see the package README). Writes go through `updateTaskFile`.
 */
export const warrenBoardFormat: BoardFormat = {
  name: 'warren',
  detect: async (dir) =>
    access(join(dir, 'board.yaml')).then(
      () => true,
      () => false,
    ),
  load: loadWarrenBoard,
  update: (_snapshot, task, changes, options) => updateTaskFile(task.path, changes, options),
};
