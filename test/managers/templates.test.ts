/**
 * Template `role` and `manager`: defaults, validation with the file and field, and the templates a
 * manager may start checked against the loaded ones.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTemplates, managedTemplates, parseTemplate, TemplateError } from '../../services/supervisor/src/templates.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const base = 'capabilities: [x]\nruntime: { kind: shell }\n';

describe('template role and manager quotas', () => {
  it('defaults to a worker with no quotas; a manager gets 2 workers, 10 subtasks and no templates unless it says', () => {
    expect(parseTemplate(`name: w\n${base}`, 'agents/w.yaml')).toMatchObject({ role: 'worker', policyRole: null, manager: null });
    expect(parseTemplate(`name: m\n${base}role: manager\n`, 'agents/m.yaml')).toMatchObject({ role: 'manager', policyRole: 'manager', manager: { maxWorkers: 2, maxSubtasks: 10, templates: [] } });
    expect(parseTemplate(`name: m\n${base}role: manager\nmanager: { maxWorkers: 3, templates: [coder] }\n`, 'agents/m.yaml').manager).toEqual({ maxWorkers: 3, maxSubtasks: 10, templates: ['coder'] });
  });

  it('refuses a bad role, quotas out of range, unknown keys and quotas on a worker, naming the file, line and field', () => {
    const refused = (text: string): string => {
      try {
        parseTemplate(text, 'agents/t.yaml');
      } catch (error) {
        expect(error).toBeInstanceOf(TemplateError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused(`name: t\n${base}role: boss\n`)).toMatch(/^agents\/t\.yaml:4: 'role' /);
    expect(refused(`name: t\n${base}role: manager\nmanager:\n  maxWorkers: -1\n`)).toMatch(/^agents\/t\.yaml:6: 'manager\.maxWorkers' /);
    expect(refused(`name: t\n${base}role: manager\nmanager:\n  workers: 3\n`)).toMatch(/^agents\/t\.yaml:6: 'manager\.workers' is not a template key \(known keys: maxWorkers, maxSubtasks, templates\)/);
    expect(refused(`name: t\n${base}manager: { maxWorkers: 1 }\n`)).toMatch(/^agents\/t\.yaml:4: 'manager' applies only to a template with 'role: manager'/);
    expect(refused(`name: t\n${base}role: manager\nmanager:\n  templates: [t]\n`)).toMatch(/'manager\.templates' names the manager itself/);
  });

  it('leaves out a manager naming a template that did not load or is a manager, with the reason; its workers are managed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-templates-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'coder.yaml'), `name: coder\n${base}`);
    writeFileSync(join(dir, 'lead.yaml'), `name: lead\n${base}role: manager\nmanager: { templates: [coder] }\n`);
    writeFileSync(join(dir, 'ghost.yaml'), `name: ghost\n${base}role: manager\nmanager: { templates: [nobody] }\n`);
    writeFileSync(join(dir, 'boss.yaml'), `name: boss\n${base}role: manager\nmanager: { templates: [lead] }\n`);
    const { templates, errors } = await loadTemplates(dir, dir);
    expect([...templates.keys()].sort()).toEqual(['coder', 'lead']);
    expect(errors.map((e) => e.message).sort()).toEqual([
      "boss.yaml:1: 'manager.templates' 'lead' is a manager, not a worker template",
      "ghost.yaml:1: 'manager.templates' 'nobody' is not a loaded template (known: boss, coder, ghost, lead)",
    ]);
    expect([...managedTemplates(templates.values())]).toEqual(['coder']);
  });
});
