/**
 * The planner's input and output shapes: the ready tasks, live agents and templates `planAssignments`
 * decides over, and the `Plan` it returns.
 */

/** A task that is ready (its dependencies are done) and not yet assigned. */
export interface ReadyTask {
  /** Unique task id. */
  id: string;
  /** Higher is more urgent. Any finite number. */
  priorityRank: number;
  /** Creation time, ms since the epoch; older tasks go first among equal priorities. */
  createdMs: number;
  /** Capabilities the task needs; an agent must provide all of them. */
  capabilities: readonly string[];
}

/** A live agent as the planner sees it. */
export interface AgentSlot {
  /** Unique agent name (the durable key). */
  name: string;
  /** The template the agent was started from. */
  template: string;
  /** Capabilities the agent provides. */
  capabilities: readonly string[];
  /** Tasks the agent holds now (non-negative integer). */
  load: number;
  /** Most tasks the agent may hold at once (non-negative integer). */
  wipLimit: number;
  /** Whether the agent takes new tasks; false while it is pending, stopping, sleeping or failed. */
  accepting: boolean;
}

/** An agent template that new instances can be started from. */
export interface TemplateSlot {
  /** Unique template name. */
  name: string;
  /** Capabilities each instance provides. */
  capabilities: readonly string[];
  /** Instances that exist now, including those still starting (non-negative integer). */
  instances: number;
  /** Most instances that may exist at once (non-negative integer). */
  maxInstances: number;
  /** Tasks one instance may hold at once (non-negative integer); 0 means it takes none. */
  wipLimitPerInstance: number;
}

/** Everything `planAssignments` decides over. */
export interface PlanInput {
  /** Tasks that are ready and not assigned; order does not matter (the planner sorts them). */
  tasks: readonly ReadyTask[];
  /** Live agents. */
  agents: readonly AgentSlot[];
  /** Templates that may be spawned. */
  templates: readonly TemplateSlot[];
  /**
   * WIP of the in-progress column: `limit` (null = unlimited) and `current` (tasks in it now).
   * `name` is the column's name used in reasons; default `in_progress`. Omitted = unlimited.
   */
  columnWip?: { limit: number | null; current: number; name?: string };
  /**
   * Policy: whether `agentName` (an instance of `template`) may be assigned `taskId`. For a planned
   * spawn, whose instance has no name yet, it is called with `agentName` `''`. Omitted = allow all.
   * Called at most once per (task, candidate) within one plan; it should be pure.
   */
  isAllowed?: (agentName: string, template: string, taskId: string) => boolean;
  /** The planning time, ms since the epoch; echoed as `Plan.plannedAtMs`. */
  nowMs: number;
}

/** One task given to one live agent. */
export interface PlannedAssignment {
  taskId: string;
  agent: string;
}

/**
 * A new instance of `template` to start; `taskIds` are the tasks it is meant to take once it is up.
 * Those tasks stay ready (unassigned) until then; the next plan assigns them to whatever is live.
 */
export interface PlannedSpawn {
  template: string;
  taskIds: string[];
}

/** A task the plan could not place, with a human-readable `reason`. */
export interface UnplacedTask {
  taskId: string;
  reason: string;
}

/** The outcome of `planAssignments`. Every input task appears exactly once across the three lists. */
export interface Plan {
  /** Assignments to live agents, in task order (most urgent first). */
  assignments: PlannedAssignment[];
  /** Instances to start, in the order they were first needed. */
  spawns: PlannedSpawn[];
  /**
   * Tasks left where they are, in task order. Reasons read like
   * `no agent or template provides capabilities [gpu]`, `template shell is at max instances (2)`,
   * `policy denies assign to every capable agent`, `column in_progress is at its WIP limit (4)`.
   */
  unplaced: UnplacedTask[];
  /** `PlanInput.nowMs`, so a stored plan says when it was made. */
  plannedAtMs: number;
}
