/**
 * Input checks for `planAssignments`: a quick pass over a well-formed input, and a field-by-field
 * pass that names the first bad value when the quick one finds something.
 */
import { compareCodeUnits } from './capabilities.js';
import { PlanInputError } from './errors.js';
import type { AgentSlot, PlanInput, ReadyTask } from './plan-types.js';

/**
 * Throws for the first bad value in `input`, in field order: `nowMs`, then each task, agent and
 * template in turn, then `columnWip`. A well-formed input is recognised in one pass that builds no
 * field paths and finds repeated ids and names by sorting them; only when that pass finds something
 * does `throwFirstProblem` go through the fields again to name the first bad one.
 * @returns each agent's position (by index in `input.agents`) in code-unit order of the names,
 *   found by the sort that looks for repeated names.
 * @throws {PlanInputError} naming the field (such as `tasks[3].priorityRank`), the value found and
 *   what was expected.
 */
export function validate(input: PlanInput): Uint32Array {
  const nameRanks = isWellFormed(input) ? rankNames(input.agents) : undefined;
  return nameRanks ?? throwFirstProblem(input);
}

/** Whether every field of `input` is well formed, agent names apart from repeats (`rankNames`). */
function isWellFormed(input: PlanInput): boolean {
  if (finiteProblem(input.nowMs) !== undefined) return false;
  const { tasks, agents, templates, columnWip } = input;
  const ids = new Array<string>(tasks.length);
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i] as ReadyTask;
    if (
      nameProblem(t.id) !== undefined ||
      finiteProblem(t.priorityRank) !== undefined ||
      finiteProblem(t.createdMs) !== undefined ||
      stringsProblem(t.capabilities) !== undefined
    ) {
      return false;
    }
    ids[i] = t.id;
  }
  for (const a of agents) {
    if (
      nameProblem(a.name) !== undefined ||
      countProblem(a.load) !== undefined ||
      countProblem(a.wipLimit) !== undefined ||
      stringsProblem(a.capabilities) !== undefined
    ) {
      return false;
    }
  }
  for (const t of templates) {
    if (
      nameProblem(t.name) !== undefined ||
      countProblem(t.instances) !== undefined ||
      countProblem(t.maxInstances) !== undefined ||
      countProblem(t.wipLimitPerInstance) !== undefined ||
      stringsProblem(t.capabilities) !== undefined
    ) {
      return false;
    }
  }
  if (columnWip) {
    if (columnWip.limit !== null && countProblem(columnWip.limit) !== undefined) return false;
    if (countProblem(columnWip.current) !== undefined) return false;
  }
  return allDistinct(ids) && allDistinct(templates.map((t) => t.name));
}

/** Whether no string repeats in `names` (which it sorts). */
function allDistinct(names: string[]): boolean {
  names.sort();
  for (let k = 1; k < names.length; k++) if (names[k] === names[k - 1]) return false;
  return true;
}

/**
 * Each agent's position in code-unit order of the names (`ranks[i]` for `agents[i]`), or
 * `undefined` when a name repeats. The names must be strings.
 */
function rankNames(agents: readonly AgentSlot[]): Uint32Array | undefined {
  const names = agents.map((a) => a.name);
  const byName = names.map((_, i) => i).sort((i, j) => compareCodeUnits(names[i] as string, names[j] as string));
  const ranks = new Uint32Array(names.length);
  for (let k = 0; k < byName.length; k++) {
    const i = byName[k] as number;
    if (k > 0 && names[i] === names[byName[k - 1] as number]) return undefined;
    ranks[i] = k;
  }
  return ranks;
}

/**
 * Goes through `input` field by field, in the order `validate` documents, and throws a
 * `PlanInputError` for the first bad value. Called only when the quick pass found one.
 */
function throwFirstProblem(input: PlanInput): never {
  check(finiteProblem(input.nowMs), 'nowMs', input.nowMs);
  const ids = new Set<string>();
  input.tasks.forEach((t, i) => {
    check(nameProblem(t.id) ?? repeatProblem(t.id, ids, 'task id'), `tasks[${i}].id`, t.id);
    check(finiteProblem(t.priorityRank), `tasks[${i}].priorityRank`, t.priorityRank);
    check(finiteProblem(t.createdMs), `tasks[${i}].createdMs`, t.createdMs);
    check(stringsProblem(t.capabilities), `tasks[${i}].capabilities`, t.capabilities);
  });
  const names = new Set<string>();
  input.agents.forEach((a, i) => {
    check(nameProblem(a.name) ?? repeatProblem(a.name, names, 'agent name'), `agents[${i}].name`, a.name);
    check(countProblem(a.load), `agents[${i}].load`, a.load);
    check(countProblem(a.wipLimit), `agents[${i}].wipLimit`, a.wipLimit);
    check(stringsProblem(a.capabilities), `agents[${i}].capabilities`, a.capabilities);
  });
  const templateNames = new Set<string>();
  input.templates.forEach((t, i) => {
    check(nameProblem(t.name) ?? repeatProblem(t.name, templateNames, 'template name'), `templates[${i}].name`, t.name);
    check(countProblem(t.instances), `templates[${i}].instances`, t.instances);
    check(countProblem(t.maxInstances), `templates[${i}].maxInstances`, t.maxInstances);
    check(countProblem(t.wipLimitPerInstance), `templates[${i}].wipLimitPerInstance`, t.wipLimitPerInstance);
    check(stringsProblem(t.capabilities), `templates[${i}].capabilities`, t.capabilities);
  });
  if (input.columnWip) {
    if (input.columnWip.limit !== null) check(countProblem(input.columnWip.limit), 'columnWip.limit', input.columnWip.limit);
    check(countProblem(input.columnWip.current), 'columnWip.current', input.columnWip.current);
  }
  throw new Error('planAssignments: the quick input check and the field-by-field check disagree');
}

/** Throws a `PlanInputError` for `field` when `problem` is set. */
function check(problem: string | undefined, field: string, value: unknown): void {
  if (problem !== undefined) throw new PlanInputError(field, value, problem);
}

function countProblem(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return undefined;
  return `expected a non-negative integer, got ${String(value)}`;
}

function finiteProblem(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return undefined;
  return `expected a finite number, got ${String(value)}`;
}

function nameProblem(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return undefined;
  return `expected a non-empty string, got ${JSON.stringify(value)}`;
}

/** A problem when `value` is already in `seen`; adds it otherwise. */
function repeatProblem(value: string, seen: Set<string>, what: string): string | undefined {
  if (seen.has(value)) return `duplicate ${what} ${JSON.stringify(value)}`;
  seen.add(value);
  return undefined;
}

function stringsProblem(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    let k = 0;
    while (k < value.length && typeof value[k] === 'string') k++;
    if (k === value.length) return undefined;
  }
  return 'expected an array of strings';
}
