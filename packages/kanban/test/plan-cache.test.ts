import { describe, expect, it } from 'vitest';
import { findFrontmatter, isFrontmatterProblem } from '../src/text.js';
import { forgetPlans, recalledPlan } from '../src/frontmatter-plan.js';
import { parseBoardConfig, parseTaskFile, rewriteOwnedFields } from '../src/index.js';
import { BOARD_YAML } from './helpers.js';

// The remembered frontmatter layouts keep one plan a card: a rewrite forgets the text it replaced,
// so a board as large as the cache gets every write spliced, however many writes it sees.

const config = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');

function remembered(text: string): boolean {
  const span = findFrontmatter(text);
  return !isFrontmatterProblem(span) && recalledPlan(text.slice(span.yamlStart, span.yamlEnd)) !== undefined;
}

const card = (id: string): string => `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [shell]\ncommand: "true"\n---\nBody.\n`;

describe('the remembered frontmatter layouts', () => {
  it('keep every card of a 2,048-card board splicable through two writes of each, in order', () => {
    forgetPlans();
    const texts = Array.from({ length: 2048 }, (_, i) => card(`t-${i}`));
    texts.forEach((text, i) => parseTaskFile(`/srv/kanban/tasks/t-${i}.md`, Buffer.from(text, 'utf8'), config, '/srv/kanban'));
    let missed = 0;
    for (let i = 0; i < texts.length; i += 1) {
      let text = texts[i]!;
      for (const changes of [
        { status: 'in_progress', assignee: 'shell-1', started: '2026-12-07T10:00:00.000Z', updated: '2026-12-07T10:00:00.000Z' },
        { status: 'done', result: 'done (no output)', completed: '2026-12-07T10:00:01.000Z', updated: '2026-12-07T10:00:01.000Z' },
      ]) {
        if (!remembered(text)) missed += 1;
        text = rewriteOwnedFields(text, changes, `t-${i}.md`);
      }
      expect(text).toContain('status: done\n');
    }
    expect(missed).toBe(0);
    forgetPlans();
  });

  it('forget the text a rewrite replaced and remember the new one', () => {
    forgetPlans();
    const text = card('a');
    parseTaskFile('/srv/kanban/tasks/a.md', Buffer.from(text, 'utf8'), config, '/srv/kanban');
    expect(remembered(text)).toBe(true);
    const next = rewriteOwnedFields(text, { status: 'in_progress' }, 'a.md');
    expect(remembered(text)).toBe(false);
    expect(remembered(next)).toBe(true);
    forgetPlans();
  });
});
