import { addComponents, addEntity } from 'bitecs';
import { AgentSpecError, UnknownTemplateError } from './errors.js';
import { decideSpawnFailure, spawnAllowed, spawnGivenUp, type SpawnBackoff, type SpawnFailureDecision } from './spawn-backoff.js';
import { modeCode, modeOf, type LifecycleMode } from './status.js';
import { requireCount, requireMs } from './validate.js';
import { ensureCapacity, type AgentWorld } from './world.js';

/**
 * The watchdog's thresholds of a template: an agent whose cgroup stays over any of them for longer
 * than `graceMs` is stopped (see `observeLimits`).
 */
export interface WatchdogThresholds {
  /** Memory in use, bytes. */
  readonly memoryBytes: number;
  /** Processes; also the count at which the agent counts as at its process limit. */
  readonly pids: number;
  /** CPU cores used on average between two readings, or null for no CPU threshold. */
  readonly cpuCores: number | null;
  /** How long a reading must stay over, ms. */
  readonly graceMs: number;
}

/**
 * What the agent systems need of a template. The service's loaded template (`AgentTemplate`) has
 * these fields and can be passed as is.
 */
export interface TemplateSpec {
  /** Unique template name: the durable key of the template entity. */
  readonly name: string;
  /** What its agents do when idle. */
  readonly lifecycle: LifecycleMode;
  /** Most instances at once (live and spawning). */
  readonly maxInstances: number;
  /** Agents kept started and idle, ready for a task (0 = none). */
  readonly warmPool: number;
  /** How long a `sleep` agent may idle before it is put to sleep, ms. */
  readonly sleepAfterIdleMs: number;
  readonly watchdog: WatchdogThresholds;
}

/** A plain view of a template entity and its spawn backoff. */
export interface TemplateView extends TemplateSpec {
  /** Current entity id: valid only while the world lives; never store it. */
  readonly eid: number;
  /** Null when its last start succeeded (or none failed). */
  readonly spawnBackoff: SpawnBackoff | null;
  /** Whether it was given up for this run after failed starts. */
  readonly givenUp: boolean;
}

function requireTemplate(world: AgentWorld, name: string, operation: string): number {
  const eid = world.templates.get(name);
  if (eid === undefined) throw new UnknownTemplateError(name, operation);
  return eid;
}

/**
 * Defines the template `spec.name` in the world, or updates its fields when it is already there
 * (its spawn backoff is kept). Returns the template entity's eid. Template entities carry the
 * `Template` and `SpawnBackoff` components and are not agents: no agent query sees them. Agents
 * name their template by name (`Identity.template`).
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when a field is invalid (field names start with `template.`).
 */
export function defineTemplate(world: AgentWorld, spec: TemplateSpec): number {
  const name = spec.name;
  if (typeof name !== 'string' || name === '') throw new AgentSpecError('template.name', name, undefined, 'expected a non-empty string');
  const mode = modeCode(spec.lifecycle);
  if (mode === undefined) throw new AgentSpecError('template.lifecycle', spec.lifecycle, undefined, 'expected persistent, sleep or autodelete');
  const maxInstances = requireCount('template.maxInstances', spec.maxInstances, undefined, 0xffff_ffff);
  const warmPool = requireCount('template.warmPool', spec.warmPool, undefined, 0xffff_ffff);
  const sleepAfterIdleMs = requireMs('template.sleepAfterIdleMs', spec.sleepAfterIdleMs);
  const watchdog = spec.watchdog ?? ({} as Partial<WatchdogThresholds>);
  const memoryBytes = requireCount('template.watchdog.memoryBytes', watchdog.memoryBytes, undefined);
  const pids = requireCount('template.watchdog.pids', watchdog.pids, undefined);
  const cpuCores = watchdog.cpuCores;
  if (cpuCores !== null && (typeof cpuCores !== 'number' || !Number.isFinite(cpuCores) || cpuCores <= 0)) {
    throw new AgentSpecError('template.watchdog.cpuCores', cpuCores, undefined, 'expected a positive number of cores or null');
  }
  const graceMs = requireMs('template.watchdog.graceMs', watchdog.graceMs);

  let eid = world.templates.get(name);
  const { Template, SpawnBackoff } = world.templateComponents;
  if (eid === undefined) {
    eid = addEntity(world);
    ensureCapacity(world, eid);
    addComponents(world, eid, [Template, SpawnBackoff]);
    SpawnBackoff.failures[eid] = 0;
    SpawnBackoff.reason[eid] = undefined;
    SpawnBackoff.nextAttemptMs[eid] = 0;
    world.templates.set(name, eid);
  }
  Template.name[eid] = name;
  Template.lifecycle[eid] = mode;
  Template.maxInstances[eid] = maxInstances;
  Template.warmPool[eid] = warmPool;
  Template.sleepAfterIdleMs[eid] = sleepAfterIdleMs;
  Template.watchdogMemoryBytes[eid] = memoryBytes;
  Template.watchdogPids[eid] = pids;
  Template.watchdogCpuCores[eid] = cpuCores ?? Number.NaN;
  Template.watchdogGraceMs[eid] = graceMs;
  return eid;
}

/** The watchdog thresholds of template entity `eid`. */
export function thresholdsOf(world: AgentWorld, eid: number): WatchdogThresholds {
  const { Template } = world.templateComponents;
  const cores = Template.watchdogCpuCores[eid] ?? Number.NaN;
  return {
    memoryBytes: Template.watchdogMemoryBytes[eid] ?? 0,
    pids: Template.watchdogPids[eid] ?? 0,
    cpuCores: Number.isNaN(cores) ? null : cores,
    graceMs: Template.watchdogGraceMs[eid] ?? 0,
  };
}

/** The spawn backoff of template entity `eid`, or undefined when none is running. */
function backoffAt(world: AgentWorld, eid: number): SpawnBackoff | undefined {
  const { SpawnBackoff } = world.templateComponents;
  const failures = SpawnBackoff.failures[eid] ?? 0;
  if (failures === 0) return undefined;
  return { failures, reason: SpawnBackoff.reason[eid] ?? '', nextAttemptMs: SpawnBackoff.nextAttemptMs[eid] ?? 0 };
}

/** A plain view of template `name`, or undefined when it is not defined. */
export function templateView(world: AgentWorld, name: string): TemplateView | undefined {
  const eid = world.templates.get(name);
  if (eid === undefined) return undefined;
  const { Template } = world.templateComponents;
  const backoff = backoffAt(world, eid);
  return {
    eid,
    name,
    lifecycle: modeOf(Template.lifecycle[eid] ?? 0),
    maxInstances: Template.maxInstances[eid] ?? 0,
    warmPool: Template.warmPool[eid] ?? 0,
    sleepAfterIdleMs: Template.sleepAfterIdleMs[eid] ?? 0,
    watchdog: thresholdsOf(world, eid),
    spawnBackoff: backoff ?? null,
    givenUp: spawnGivenUp(backoff),
  };
}

/** Views of every template, in definition order. */
export function listTemplates(world: AgentWorld): TemplateView[] {
  return [...world.templates.keys()].map((name) => templateView(world, name) as TemplateView);
}

/**
 * Records that an agent of `template` could not start, or died before it was ready, at
 * `failure.nowMs`, and stores the template's new backoff (see `decideSpawnFailure` for the rule).
 * @returns the decision: what to audit (`sameAttempt`, `delayMs`, `givenUp`) and the new backoff.
 *
 * @throws {UnknownTemplateError} `WARREN_TEMPLATE_UNKNOWN` when the template was never defined.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` as `decideSpawnFailure`.
 */
export function recordSpawnFailure(
  world: AgentWorld,
  template: string,
  failure: { reason: string; nowMs: number; restartBackoffMs: number },
): SpawnFailureDecision {
  const eid = requireTemplate(world, template, 'recordSpawnFailure');
  const decision = decideSpawnFailure(backoffAt(world, eid), failure);
  const { SpawnBackoff } = world.templateComponents;
  SpawnBackoff.failures[eid] = decision.backoff.failures;
  SpawnBackoff.reason[eid] = decision.backoff.reason;
  SpawnBackoff.nextAttemptMs[eid] = decision.backoff.nextAttemptMs;
  return decision;
}

/**
 * Ends the spawn backoff of `template` (one of its agents started). No-op when it has none.
 *
 * @throws {UnknownTemplateError} `WARREN_TEMPLATE_UNKNOWN` when the template was never defined.
 */
export function clearSpawnBackoff(world: AgentWorld, template: string): void {
  const eid = requireTemplate(world, template, 'clearSpawnBackoff');
  const { SpawnBackoff } = world.templateComponents;
  SpawnBackoff.failures[eid] = 0;
  SpawnBackoff.reason[eid] = undefined;
  SpawnBackoff.nextAttemptMs[eid] = 0;
}

/** The spawn backoff of `template`, or undefined when it has none (or is not defined). */
export function spawnBackoffOf(world: AgentWorld, template: string): SpawnBackoff | undefined {
  const eid = world.templates.get(template);
  return eid === undefined ? undefined : backoffAt(world, eid);
}

/**
 * Whether an agent of `template` may be started at `nowMs` as far as its spawn backoff goes: it has
 * none, or it was not given up and its wait is over. (Instance limits are the planner's and
 * `warmPoolSystem`'s business.) An undefined template has no backoff: true.
 */
export function templateMayStart(world: AgentWorld, template: string, nowMs: number): boolean {
  return spawnAllowed(spawnBackoffOf(world, template), nowMs);
}
