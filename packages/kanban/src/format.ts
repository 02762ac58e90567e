import { loadBoard } from './load.js';
import { parseTaskFile } from './task.js';
import type { BoardFormat } from './types.js';
import { updateTaskFile } from './update.js';

/**
 * Warren's own board format: `<board>/board.yaml` plus `<board>/tasks/*.md` with YAML frontmatter.
 * Other formats (Backlog.md, Obsidian Kanban, JSON-config boards) implement the same interface.
 */
export const warrenBoardFormat: BoardFormat = {
  name: 'warren',
  load: loadBoard,
  parse: parseTaskFile,
  update: updateTaskFile,
};
