import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BoardConfigError, DEFAULT_PRIORITIES, loadBoardConfig, parseBoardConfig } from '@warren/kanban';
import { BOARD_YAML, makeBoard, type TempBoard } from './helpers.js';

function configError(text: string): BoardConfigError {
  try {
    parseBoardConfig(text, '/srv/kanban/board.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BoardConfigError);
    return error as BoardConfigError;
  }
  throw new Error('expected a BoardConfigError');
}

describe('board.yaml', () => {
  let board: TempBoard | undefined;
  afterEach(async () => {
    await board?.cleanup();
    board = undefined;
  });

  it('loads a valid config with columns in order, roles and priorities', async () => {
    board = await makeBoard();
    const config = await loadBoardConfig(board.dir);
    expect(config).toEqual({
      name: 'Test board',
      columns: [
        { id: 'backlog', name: 'Backlog' },
        { id: 'ready', name: 'Ready' },
        { id: 'in_progress', name: 'In progress', wip: 4 },
        { id: 'done', name: 'Done' },
        { id: 'failed', name: 'Failed' },
      ],
      roles: { ready: 'ready', in_progress: 'in_progress', done: 'done', failed: 'failed' },
      priorities: ['low', 'normal', 'high', 'urgent'],
      defaultPriority: 'normal',
    });
  });

  it('defaults priorities and default_priority', () => {
    const text = BOARD_YAML.replace(/^priorities:.*\n/m, '').replace(/^default_priority:.*\n/m, '');
    const config = parseBoardConfig(text, '/srv/kanban/board.yaml');
    expect(config.priorities).toEqual(DEFAULT_PRIORITIES);
    expect(config.defaultPriority).toBe('normal');
  });

  it('names an unknown key with its line', () => {
    const error = configError(BOARD_YAML.replace('name: Test board\n', 'name: Test board\ncolour: blue\n'));
    expect(error.code).toBe('WARREN_TASK_PARSE');
    expect(error.line).toBe(3);
    expect(error.field).toBe('colour');
    expect(error.path).toBe('/srv/kanban/board.yaml');
    expect(error.message).toBe("kanban/board.yaml:3: unknown key 'colour'");
  });

  it('names an unknown key inside a column', () => {
    const error = configError(BOARD_YAML.replace('{ id: done, name: Done }', '{ id: done, name: Done, color: red }'));
    expect(error.line).toBe(7);
    expect(error.field).toBe('columns[3].color');
    expect(error.message).toBe("kanban/board.yaml:7: unknown key 'color'");
  });

  it('reports a missing role at its parent', () => {
    const error = configError(BOARD_YAML.replace('  failed: failed\n', ''));
    expect(error.field).toBe('roles.failed');
    expect(error.message).toBe("kanban/board.yaml:9: 'roles.failed' is required");
  });

  it('rejects a role that names no column', () => {
    const error = configError(BOARD_YAML.replace('  done: done\n', '  done: finished\n'));
    expect(error.line).toBe(12);
    expect(error.field).toBe('roles.done');
    expect(error.reason).toMatch(/^'roles\.done' names no column: 'finished'/);
  });

  it('rejects a duplicate column id on the second occurrence', () => {
    const error = configError(BOARD_YAML.replace('{ id: failed, name: Failed }', '{ id: ready, name: Again }'));
    expect(error.line).toBe(8);
    expect(error.field).toBe('columns[4].id');
    expect(error.reason).toBe("column id 'ready' is used twice (also columns[1])");
  });

  it('rejects a wrongly typed WIP limit', () => {
    const error = configError(BOARD_YAML.replace('wip: 4', 'wip: many'));
    expect(error.line).toBe(6);
    expect(error.field).toBe('columns[2].wip');
    expect(error.reason).toBe("'columns[2].wip' must be a whole number");
  });

  it('rejects a default priority that is not a priority', () => {
    const error = configError(BOARD_YAML.replace('default_priority: normal', 'default_priority: medium'));
    expect(error.line).toBe(15);
    expect(error.reason).toBe("'default_priority' must be one of low, normal, high, urgent");
  });

  it('reports invalid YAML with the parser line', () => {
    const error = configError('name: x\ncolumns: [\nroles: {}\n');
    expect(error.line).toBeGreaterThanOrEqual(2);
    expect(error.reason).toMatch(/^invalid YAML: /);
  });

  it('reports a missing board.yaml as unreadable', async () => {
    board = await makeBoard();
    const error = await loadBoardConfig(join(board.root, 'nowhere')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BoardConfigError);
    expect((error as BoardConfigError).line).toBe(0);
    expect((error as BoardConfigError).cause).toMatchObject({ code: 'ENOENT' });
    expect((error as BoardConfigError).message).toMatch(/^nowhere\/board\.yaml: cannot read the board config: ENOENT/);
  });
});
