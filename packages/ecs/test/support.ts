import type { AgentSpec, TemplateSpec } from '@warren/ecs';

/**
 * An agent spec for tests: agent `name` of template `shell`, uid and gid 61000, capability
 * `shell`, persistent, one task at a time; `over` replaces any field.
 */
export function agentSpec(name: string, over: Partial<AgentSpec> = {}): AgentSpec {
  return {
    name,
    template: 'shell',
    uid: 61_000,
    gid: 61_000,
    capabilities: ['shell'],
    wipLimit: 1,
    lifecycle: 'persistent',
    resources: { memoryMaxBytes: 0, pidsMax: 100, cpuWeight: 100 },
    nowMs: 0,
    ...over,
  };
}

/** A template spec for tests: persistent, at most 4 instances, no warm pool; `over` replaces any field. */
export function templateSpec(name: string, over: Partial<TemplateSpec> = {}): TemplateSpec {
  return {
    name,
    lifecycle: 'persistent',
    maxInstances: 4,
    warmPool: 0,
    sleepAfterIdleMs: 5_000,
    watchdog: { memoryBytes: 2 ** 30 - 1, pids: 90, cpuCores: null, graceMs: 2_000 },
    ...over,
  };
}
