import { describe, expect, it } from 'vitest';
import { blockedTasks, parseBoardConfig } from '@warren/kanban';
import { BOARD_YAML } from './helpers.js';

const config = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');
const t = (id: string, dependsOn: string[] = [], status = 'ready') => ({ id, dependsOn, status });
const done = config.roles.done;

describe('blockedTasks (attack case 33)', () => {
  it('names the ready tasks in a cycle, on themselves, or on an unknown id, with why', () => {
    expect(blockedTasks([t('t1'), t('ca', ['cb']), t('cb', ['ca']), t('cs', ['cs']), t('cu', ['nosuch'])], config)).toEqual([
      { taskId: 'ca', reason: 'dependency cycle: ca -> cb -> ca' },
      { taskId: 'cb', reason: 'dependency cycle: ca -> cb -> ca' },
      { taskId: 'cs', reason: 'depends on itself' },
      { taskId: 'cu', reason: 'depends on unknown task(s) nosuch' },
    ]);
  });

  it('blocks what depends on a blocked task, but not a task whose dependency is merely not done', () => {
    expect(blockedTasks([t('a', ['gone']), t('b', ['a']), t('c', ['b']), t('w', ['later']), t('later', [], 'backlog')], config)).toEqual([
      { taskId: 'a', reason: 'depends on unknown task(s) gone' },
      { taskId: 'b', reason: 'depends on blocked task a' },
      { taskId: 'c', reason: 'depends on blocked task b' },
    ]);
  });

  it('ignores dependencies already done and tasks outside the ready column', () => {
    expect(blockedTasks([t('a', ['b'], done), t('b', ['a']), t('x', ['x'], 'backlog')], config)).toEqual([]);
  });

  it('covers every task of a cycle group, not only the reported chain', () => {
    const blocked = blockedTasks([t('a', ['b']), t('b', ['c', 'a']), t('c', ['b'])], config);
    expect(blocked.map((b) => b.taskId)).toEqual(['a', 'b', 'c']);
  });
});
