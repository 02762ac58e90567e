import { queuePositions, TaskState, type Registry } from '@warren/registry';
import type { MetricsSources } from './metrics.js';

/** The scrape-time sources {@link registrySources} reads from the registry. */
export type RegistrySources = Required<Pick<MetricsSources, 'tasksByState' | 'queueLength' | 'agentsByState' | 'auditRows'>>;

/**
 * The sources of `warren_tasks`, `warren_queue_length`, `warren_agents` and `warren_audit_rows`
 * over `@warren/registry`: every task state is reported (0 when no task is in it, so a state that
 * empties drops to 0 rather than vanishing); the queue length counts the ready tasks holding a
 * queue position (what `registry.tasks({ waiting: true })` lists); agents are counted by the state
 * of their `agents` row; audit rows are the trail's last seq. Each call reads the state store's
 * task cache and two small SQLite queries, so it suits a scrape every few seconds.
 */
export function registrySources(registry: Registry): RegistrySources {
  return {
    tasksByState: () => {
      const counts: Record<string, number> = Object.fromEntries(Object.values(TaskState).map((s) => [s, 0]));
      for (const row of registry.state.tasks()) counts[row.state] = (counts[row.state] ?? 0) + 1;
      return counts;
    },
    queueLength: () => queuePositions(registry.state.tasks()).size,
    agentsByState: () => {
      const counts: Record<string, number> = {};
      for (const row of registry.state.agents()) counts[row.state] = (counts[row.state] ?? 0) + 1;
      return counts;
    },
    auditRows: () => registry.status().auditRows,
  };
}
