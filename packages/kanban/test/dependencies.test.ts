import { describe, expect, it } from 'vitest';
import { checkDependencies, isReady, parseBoardConfig, type Task } from '@warren/kanban';
import { BOARD_YAML } from './helpers.js';

const config = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');
const t = (id: string, dependsOn: string[] = [], status = 'ready') => ({ id, dependsOn, status });

describe('checkDependencies', () => {
  it('finds nothing on a sound board', () => {
    expect(checkDependencies([t('a'), t('b', ['a']), t('c', ['a', 'b'])])).toEqual([]);
  });

  it('reports unknown dependencies per task, once each', () => {
    expect(checkDependencies([t('a', ['x', 'b', 'x']), t('b'), t('c', ['y'])])).toEqual([
      { kind: 'unknown', taskId: 'a', missing: ['x'], message: "task 'a' depends on unknown task(s) x" },
      { kind: 'unknown', taskId: 'c', missing: ['y'], message: "task 'c' depends on unknown task(s) y" },
    ]);
  });

  it('reports a cycle as a chain through its first task', () => {
    const problems = checkDependencies([t('c', ['a']), t('b', ['c']), t('a', ['b']), t('d', ['a'])]);
    expect(problems).toEqual([{ kind: 'cycle', chain: ['a', 'b', 'c', 'a'], message: 'dependency cycle: a -> b -> c -> a' }]);
  });

  it('reports a self-dependency and separate cycles separately', () => {
    const problems = checkDependencies([t('s', ['s']), t('x', ['y']), t('y', ['x']), t('z', ['missing'])]);
    expect(problems).toEqual([
      { kind: 'unknown', taskId: 'z', missing: ['missing'], message: "task 'z' depends on unknown task(s) missing" },
      { kind: 'cycle', chain: ['s', 's'], message: 'dependency cycle: s -> s' },
      { kind: 'cycle', chain: ['x', 'y', 'x'], message: 'dependency cycle: x -> y -> x' },
    ]);
  });

  it('handles long chains without recursion limits', () => {
    const tasks = Array.from({ length: 20_000 }, (_, i) => t(`t${i}`, i === 0 ? ['t19999'] : [`t${i - 1}`]));
    const problems = checkDependencies(tasks);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ kind: 'cycle' });
    const chain = (problems[0] as { chain: string[] }).chain;
    expect(chain).toHaveLength(20_001);
    expect(chain[0]).toBe('t0');
    expect(chain[1]).toBe('t19999');
  });
});

describe('isReady', () => {
  it('needs the ready column and every dependency done', () => {
    const tasks = [t('a', [], 'done'), t('b', [], 'in_progress'), t('c', ['a']), t('d', ['a', 'b']), t('e', ['ghost']), t('f', [], 'backlog')];
    const byId = new Map(tasks.map((x) => [x.id, x as unknown as Task]));
    expect(tasks.filter((x) => isReady(x, byId, config)).map((x) => x.id)).toEqual(['c']);
  });
});
