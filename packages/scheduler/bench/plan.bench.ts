import { bench, describe } from 'vitest';
import { planAssignments, type AgentSlot, type PlanInput, type ReadyTask } from '@warren/scheduler';

// 10,000 ready tasks × 1,000 agents over 40 capabilities. Run with
// `npx vitest bench packages/scheduler --run`.
const CAPS = Array.from({ length: 40 }, (_, i) => `cap-${i}`);

function pick(seed: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(CAPS[(seed * 7 + i * 13) % CAPS.length] as string);
  return out;
}

function input(distinctAgentSets: number): PlanInput {
  const tasks: ReadyTask[] = Array.from({ length: 10_000 }, (_, i) => ({
    id: `T-${i}`,
    priorityRank: i % 5,
    createdMs: i,
    capabilities: pick(i % 50, 1 + (i % 2)),
  }));
  const agents: AgentSlot[] = Array.from({ length: 1_000 }, (_, i) => ({
    name: `agent-${i}`,
    template: `tmpl-${i % 10}`,
    capabilities: [...pick(i % 50, 1 + (i % 2)), ...pick((i % distinctAgentSets) + 3, 12)],
    load: i % 3,
    wipLimit: 4,
    accepting: i % 17 !== 0,
  }));
  const templates = Array.from({ length: 10 }, (_, i) => ({
    name: `tmpl-${i}`,
    capabilities: pick(i, 20),
    instances: 100,
    maxInstances: 120,
    wipLimitPerInstance: 4,
  }));
  return { tasks, agents, templates, columnWip: { limit: 5_000, current: 100 }, isAllowed: (a) => !a.endsWith('7'), nowMs: 0 };
}

describe('planAssignments 10k tasks × 1k agents', () => {
  const grouped = input(20);
  const distinct = input(1_000);
  bench('agents in ~100 capability groups', () => {
    planAssignments(grouped);
  });
  bench('every agent with its own capability set', () => {
    planAssignments(distinct);
  });
});
