import { afterEach, describe, expect, it } from 'vitest';
import { checkTransition, loadBoard, MoveRefusedError, updateTask, wipStatus } from '../src/index.js';
import { BOARD_YAML, makeBoard, taskText, type TempBoard } from './helpers.js';

let board: TempBoard | undefined;
afterEach(async () => {
  await board?.cleanup();
  board = undefined;
});

describe('Warren board process rules', () => {
  it('reads transitions and wip_per_agent from board.yaml and enforces them in updateTask', async () => {
    board = await makeBoard(`${BOARD_YAML}transitions:\n  ready: [in_progress]\n  in_progress: [done, failed, ready]\nwip_per_agent: 1\n`);
    await board.task('a.md', taskText('a'));
    await board.task('b.md', taskText('b', 'assignee: shell-1\n').replace('status: ready', 'status: in_progress'));
    await board.task('c.md', taskText('c').replace('status: ready', 'status: backlog'));
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.format).toBe('warren');
    expect(checkTransition(snapshot.config, 'ready', 'done')?.message).toBe('no transition rule allows ready -> done (allowed from ready: in_progress)');
    expect(checkTransition(snapshot.config, 'backlog', 'ready')?.allowed).toEqual([]);
    const [a, , c] = snapshot.tasks;
    await expect(updateTask(snapshot, c!, { status: 'ready' })).rejects.toBeInstanceOf(MoveRefusedError);
    const refused = (await updateTask(snapshot, a!, { status: 'in_progress', assignee: 'shell-1' }).catch((e: unknown) => e)) as MoveRefusedError;
    expect(refused.refusal.kind).toBe('agent-wip');
    const { hash } = await updateTask(snapshot, a!, { status: 'in_progress', assignee: 'shell-2' }, { expectedHash: a!.hash });
    const after = await loadBoard(board.dir);
    expect(after.tasks[0]).toMatchObject({ status: 'in_progress', assignee: 'shell-2', hash });
    expect(wipStatus(after).map((w) => `${w.kind}:${w.name}:${w.count}`)).toEqual(['column:in_progress:2', 'agent:shell-1:1', 'agent:shell-2:1']);
    // force skips the rules (a person's explicit override).
    await updateTask(after, after.tasks[2]!, { status: 'done' }, { force: true });
    expect((await loadBoard(board.dir)).tasks[2]!.status).toBe('done');
  });

  it('rejects transitions naming unknown columns, with the line', async () => {
    board = await makeBoard(`${BOARD_YAML}transitions:\n  ready: [nowhere]\n`);
    await expect(loadBoard(board.dir)).rejects.toThrow(/board\.yaml:17: 'transitions.ready' names no column: 'nowhere'/);
  });
});
