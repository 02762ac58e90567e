/**
 * @warren/scheduler: pure assignment planning. Given the ready tasks, the live agents and the
 * templates, `planAssignments` decides which agent takes which task, which new instances to start,
 * and why the rest wait. No I/O and no clock: the same input always gives the same plan.
 *
 * ```ts
 * import { planAssignments } from '@warren/scheduler';
 * const plan = planAssignments({
 *   tasks: [{ id: 'T-1', priorityRank: 2, createdMs: 1_700_000_000_000, capabilities: ['shell'] }],
 *   agents: [{ name: 'shell-1', template: 'shell', capabilities: ['shell'], load: 0, wipLimit: 1, accepting: true }],
 *   templates: [{ name: 'shell', capabilities: ['shell'], instances: 1, maxInstances: 2, wipLimitPerInstance: 1 }],
 *   columnWip: { limit: 4, current: 1 },
 *   isAllowed: (agent, template, taskId) => agent !== 'intruder',
 *   nowMs: Date.now(),
 * });
 * // plan.assignments → [{ taskId: 'T-1', agent: 'shell-1' }]; plan.spawns → []; plan.unplaced → []
 * ```
 *
 * The capability interning it uses (`CapabilityIndex`, `coversMask`) is exported for other
 * packages that keep capability sets as bitmasks.
 */
export { planAssignments } from './plan.js';
export type { PlanInput, ReadyTask, AgentSlot, TemplateSlot, Plan, PlannedAssignment, PlannedSpawn, UnplacedTask } from './plan.js';
export { CapabilityIndex, coversMask, maskKey } from './capabilities.js';
export { PlanInputError } from './errors.js';
