import { describe, expect, it } from 'vitest';
import { lazyChildLogger, type Logger } from '../src/index.js';

/** A logger that records its children's bindings and every line with the bindings of its chain. */
function recording(lines: unknown[][], children: Record<string, unknown>[], bindings: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (...args: unknown[]) => void lines.push([level, bindings, ...args]);
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => {
      children.push(more);
      return recording(lines, children, { ...bindings, ...more });
    },
  };
}

describe('lazyChildLogger', () => {
  it('makes its child at the first line only, once, and passes lines as they were given', () => {
    const lines: unknown[][] = [];
    const children: Record<string, unknown>[] = [];
    const log = lazyChildLogger(recording(lines, children), { agent: 'a-1' });
    const grandchild = log.child({ socket: 'bus.sock' });
    expect(children).toEqual([]);
    log.info({ n: 1 });
    log.warn({ n: 2 }, 'two');
    expect(children).toEqual([{ agent: 'a-1' }]);
    expect(lines).toEqual([
      ['info', { agent: 'a-1' }, { n: 1 }],
      ['warn', { agent: 'a-1' }, { n: 2 }, 'two'],
    ]);
    grandchild.error({ n: 3 }, 'three');
    expect(children).toEqual([{ agent: 'a-1' }, { socket: 'bus.sock' }]);
    expect(lines.at(-1)).toEqual(['error', { agent: 'a-1', socket: 'bus.sock' }, { n: 3 }, 'three']);
  });
});
