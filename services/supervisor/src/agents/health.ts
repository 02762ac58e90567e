import { join } from 'node:path';
import { livenessSystem, markStopping, recordUsage, watchdogSystem } from '@warren/ecs';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { DiskReserve, filesystemUsedBytes, formatBytes, HomeWatch, homeUsage, type WatchedHome } from '../disk.js';
import { DiskPressure, type DiskOffender } from '../disk-pressure.js';
import type { AgentInstance } from '@warren/runtime';
import type { Inbox } from '../executions/inbox.js';
import type { Settler } from '../executions/settle.js';
import type { AgentLifecycle } from './lifecycle.js';
import { IDLE_HEARTBEAT_FACTOR } from '../agent-runtime.js';

/** How often the home of an agent running a task is measured, in ms. */
const HOME_SCAN_MS = 1_000;
/**
 * Least interval between two readings of the cgroups of an agent that holds a task, in ms (a
 * quarter of its template's watchdog grace when that is shorter): the grace (10 s by default) is
 * judged over several readings.
 */
const BUSY_READ_MS = 1_000;
/**
 * Least interval between two readings of the cgroups of an idle agent, in ms: what grows in an
 * idle sandbox (a process a task left behind) is found within this plus the grace; its cgroup's
 * own limits (memory, pids) hold at every instant regardless. At rest a reading every tick (five
 * cgroup files per agent) was most of the supervisor's CPU time; with a thousand idle agents, a
 * reading every 5 s was still a thousand `pread`s a second.
 */
const IDLE_READ_MS = 15_000;

/**
 * The least interval between two readings of an agent's cgroups, in ms: {@link BUSY_READ_MS} (or a
 * quarter of the template's watchdog grace, `graceMs`, when that is shorter) while it holds a
 * task, {@link IDLE_READ_MS} while it holds none.
 */
export function usageReadEveryMs(busy: boolean, graceMs: number): number {
  return busy ? Math.min(BUSY_READ_MS, graceMs / 4) : IDLE_READ_MS;
}
/** Least interval between two statfs of the state directory's (and the homes') filesystem, in ms. */
const DISK_READ_MS = 100;

/**
 * Agent health: liveness (heartbeats), the watchdog (cgroup readings against the template's
 * thresholds), and disk (homes over their limit, a filesystem filled by one agent, the state
 * directory's free-space reserve). Each finding stops the agent with its reason; the exit then
 * settles its tasks.
 */
export class AgentHealth {
  /** The free-space reserve of the state directory's filesystem. */
  private readonly diskReserve: DiskReserve;
  /** Measures the homes of agents running tasks against their templates' `homeLimit`. */
  private readonly homeWatch: HomeWatch;
  /** Finds the agent to stop when a filesystem its home shares runs out of space. */
  private readonly diskPressure: DiskPressure;
  /** Per agent, its instance, whether it held a task, and when its cgroups were last read (ms since the epoch). */
  private readonly readAtMs = new Map<string, { readonly instance: AgentInstance; readonly atMs: number; readonly busy: boolean }>();
  /** Per agent, its instance and when a tick first held it (ms since the epoch): liveness counts from there. */
  private readonly heldSince = new Map<string, { readonly instance: AgentInstance; readonly sinceMs: number }>();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly agents: AgentLifecycle,
    private readonly settler: Settler,
    private readonly inbox: Inbox,
  ) {
    const { config } = ctx;
    this.diskReserve = new DiskReserve(config.stateDir, config.diskReserve, DISK_READ_MS, join(config.stateDir, 'disk-reserve'));
    this.diskPressure = new DiskPressure({ stateDir: config.stateDir, homeRoot: config.homeRoot, everyMs: DISK_READ_MS });
    this.homeWatch = new HomeWatch(HOME_SCAN_MS, (home, usedBytes) =>
      this.stopForDisk(home.agent, `home over its ${formatBytes(home.limitBytes)} limit (${formatBytes(usedBytes)} used)`, usedBytes, home.limitBytes),
    );
  }

  /**
   * Kills agents that have said nothing for longer than the heartbeat timeout (an idle agent, whose
   * runner beats less often: {@link IDLE_HEARTBEAT_FACTOR} times it); their tasks are re-queued on
   * exit. The silence of an instance counts from its spawn at the earliest (the first tick that
   * holds it): a start that waited its turn (accounts made, NATS users reloaded, the sandbox
   * spawned while hundreds of others start) leaves its runner the whole timeout to say hello.
   */
  checkLiveness(nowMs: number): void {
    const { ctx } = this;
    const timeoutMs = ctx.config.heartbeatTimeoutMs;
    this.trackHeld(nowMs);
    for (const intent of livenessSystem(ctx.world, { nowMs, heartbeatTimeoutMs: timeoutMs, idleHeartbeatTimeoutMs: IDLE_HEARTBEAT_FACTOR * timeoutMs })) {
      const handle = this.agents.handles.get(intent.agent);
      if (!handle || this.agents.isStopping(intent.agent)) continue;
      if (nowMs - (this.heldSince.get(intent.agent)?.sinceMs ?? nowMs) <= timeoutMs) continue;
      ctx.emit({ actor: SUPERVISOR, action: 'agent.unresponsive', object: `agent:${intent.agent}`, details: { reason: intent.reason } });
      this.agents.stop(intent.agent, 'unresponsive');
    }
  }

  /**
   * Notes when each instance held was first seen (`nowMs`) and forgets those no longer held (a
   * pass over the handles comparing references: microseconds for a thousand agents).
   */
  private trackHeld(nowMs: number): void {
    // forEach: a for-of over the entries would allocate a pair per agent every tick.
    this.agents.handles.forEach((handle, name) => {
      if (this.heldSince.get(name)?.instance !== handle.instance) this.heldSince.set(name, { instance: handle.instance, sinceMs: nowMs });
    });
    if (this.heldSince.size > this.agents.handles.size) {
      for (const name of this.heldSince.keys()) if (!this.agents.handles.has(name)) this.heldSince.delete(name);
    }
  }

  /**
   * The watchdog: reads each agent's cgroup (memory, pids, CPU time, refused forks, OOM kills)
   * into its ECS `Resources` component, lets `watchdogSystem` judge the readings against the
   * template's thresholds, and kills, as a whole tree, each agent it finds over them for longer
   * than their grace. The exit kind is `watchdog`, the reason goes to the audit and, through the
   * exit, onto the task. An agent holding a task is read every {@link BUSY_READ_MS} (every quarter
   * of its template's grace when that is shorter, at most once a tick), an idle one every
   * {@link IDLE_READ_MS}, a new instance at the first tick that holds it, and an agent whose task
   * count went from or to zero at once (a task's start is when its usage starts to matter); the watchdog judges
   * only the agents read in this tick. A reading a result of the agent took in this tick (for its
   * OOM kills) is used instead of reading again.
   */
  runWatchdog(nowMs: number): void {
    const { ctx } = this;
    const { Load } = ctx.world.components;
    const due: string[] = [];
    this.agents.handles.forEach((agent, name) => {
      const eid = ctx.world.agents.get(name);
      const busy = eid !== undefined && (Load.active[eid] ?? 0) > 0;
      const read = this.readAtMs.get(name);
      if (read !== undefined && read.instance === agent.instance && read.busy === busy && nowMs - read.atMs < usageReadEveryMs(busy, agent.template.watchdog.graceMs)) return;
      if (this.agents.isStopping(name)) return;
      this.readAtMs.set(name, { instance: agent.instance, atMs: nowMs, busy });
      recordUsage(ctx.world, name, this.inbox.readings.take(name, agent.instance, nowMs) ?? agent.instance.usage());
      due.push(name);
    });
    this.inbox.readings.clear();
    if (this.readAtMs.size > this.agents.handles.size) {
      for (const name of this.readAtMs.keys()) if (!this.agents.handles.has(name)) this.readAtMs.delete(name);
    }
    if (due.length === 0) return;
    for (const { agent: name, detail, reason, taskFailure, usage } of watchdogSystem(ctx.world, { nowMs, agents: due })) {
      const agent = this.agents.handles.get(name);
      if (!agent) continue;
      ctx.emit({ actor: SUPERVISOR, action: 'agent.watchdog', object: `agent:${name}`, details: { detail, reason, usage } });
      markStopping(ctx.world, name, 'watchdog', nowMs, { detail: `stopped by the watchdog: ${detail}`, ...(taskFailure === undefined ? {} : { failTasks: taskFailure }) });
      agent.instance.stop(ctx.config.killGraceMs, { reason: 'watchdog', detail }).catch((error: unknown) => ctx.log.error({ err: error, agent: name }, 'agent did not stop cleanly'));
    }
  }

  /** Measures the homes of agents running tasks (see HomeWatch). */
  scanHomes(nowMs: number): void {
    this.homeWatch.scan(this.busyHomes(), nowMs);
  }

  /** An idle agent took a task: its home's baseline is taken (see DiskPressure.taskStarted). */
  taskStarted(agent: string, home: string): void {
    const handle = this.agents.handles.get(agent);
    const options = handle ? { instance: handle.instance, ownFilesystem: handle.template.homeQuotaBytes !== null } : {};
    this.diskPressure.taskStarted(agent, home, Date.now(), options).catch((error: unknown) => this.ctx.log.warn({ err: error, agent }, 'cannot measure the home'));
  }

  /** Homes of live agents that run a task (an idle agent's home does not grow). */
  private *busyHomes(): Iterable<WatchedHome> {
    const open = this.ctx.state.openAssignments();
    if (open.length === 0) return;
    const busy = new Set(open.map((a) => a.agent));
    for (const [name, agent] of this.agents.handles) {
      if (busy.has(name) && !this.agents.isStopping(name)) {
        yield { agent: name, dir: agent.account.home, limitBytes: agent.template.homeLimitBytes, ownFilesystem: agent.template.homeQuotaBytes !== null };
      }
    }
  }

  /**
   * Measures the workspace (`<home>/work/<task id>`) of each result waiting to be applied: a task
   * that ended faster than the periodic home scan but left more than its home's limit there is
   * stopped for `disk` before its result is applied (which then changes nothing). So is one whose
   * writes filled a filesystem its home shares: the state directory's filesystem is read again and
   * a search for the agent that filled it runs to its end first. A home on a filesystem of its own
   * whose statfs shows no more than its limit in use is not walked (its workspace holds less); a
   * workspace walked counts into the running total of the agent's baselines.
   */
  async checkResultWorkspaces(nowMs: number): Promise<void> {
    const checks = this.inbox.events.flatMap((e) => {
      const agent = e.kind === 'result' ? this.agents.handles.get(e.delivery.data.agent) : undefined;
      return e.kind === 'result' && agent && !this.agents.isStopping(e.delivery.data.agent) ? [{ name: e.delivery.data.agent, agent, taskId: e.delivery.data.taskId }] : [];
    });
    if (checks.length === 0) return;
    this.relieveDisk(nowMs, true);
    await this.diskPressure.settled();
    await Promise.all(
      checks.map(async ({ name, agent, taskId }) => {
        if (this.agents.isStopping(name) || !/^[^/\0]+$/.test(taskId) || taskId === '.' || taskId === '..') return;
        const limitBytes = agent.template.homeLimitBytes;
        if (agent.template.homeQuotaBytes !== null && (filesystemUsedBytes(agent.account.home) ?? Number.POSITIVE_INFINITY) <= limitBytes) return;
        const usage = await homeUsage(join(agent.account.home, 'work', taskId), 20_000, limitBytes + 1, true);
        this.diskPressure.workspaceMeasured(name, usage);
        if (usage.bytes > limitBytes) {
          this.stopForDisk(name, `home over its ${formatBytes(limitBytes)} limit (the workspace of ${taskId} holds ${formatBytes(usage.bytes)})`, usage.bytes, limitBytes);
        }
      }),
    );
  }

  /**
   * Stops an agent whose home grew past its template's `homeLimit`, or the `offender` that filled a
   * shared filesystem: its open executions fail for good with the reason `disk: <detail>`, then its
   * sandbox is stopped. An offender is frozen first and, when it filled the state directory's
   * filesystem, the space Warren holds back is released before anything is written, so the
   * failure, the audit rows and the other tasks' results can be stored. The files stay in the home.
   */
  private stopForDisk(name: string, detail: string, usedBytes: number, limitBytes: number, offender?: DiskOffender): void {
    const { ctx } = this;
    const agent = this.agents.handles.get(name);
    if (!agent || this.agents.isStopping(name) || !ctx.isRunning()) return;
    const frozen = offender !== undefined && agent.instance.freeze();
    if (offender?.filesystem === 'state') this.releaseDiskReserve(detail);
    const nowMs = Date.now();
    const reason = `disk: ${detail}`;
    const open = ctx.state.openAssignments().filter((a) => a.agent === name);
    const found = offender ? { grownBytes: offender.grownBytes, freeBytes: offender.freeBytes, filesystem: offender.filesystem } : {};
    ctx.transaction(() => {
      ctx.emit({ actor: SUPERVISOR, action: 'agent.disk', object: `agent:${name}`, details: { detail, usedBytes, limitBytes, ...found, openTasks: open.map((a) => a.taskId) } });
      for (const a of open) {
        if (!ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'failed', exitCode: null, summary: reason, outputs: [] }, nowMs)) continue;
        // No template: a task stopped for its disk use is not retried.
        if (this.settler.settle(a.taskId, a.attempt, 'failed', reason, nowMs, undefined) === undefined) continue;
        ctx.emit({ actor: SUPERVISOR, action: 'task.fail', object: `task:${a.taskId}`, details: { attempt: a.attempt, outcome: 'failed', reason } });
      }
    });
    markStopping(ctx.world, name, 'watchdog', nowMs, { detail: `stopped: ${reason}` });
    // A frozen sandbox cannot act on SIGTERM: it is killed at once.
    agent.instance
      .stop(frozen ? 0 : ctx.config.killGraceMs, { reason: 'watchdog', detail: reason })
      .catch((error: unknown) => ctx.log.error({ err: error, agent: name }, 'agent did not stop cleanly'));
    ctx.requestTick();
  }

  /**
   * Stops the agent that filled a filesystem its home shares with the state directory or other
   * homes (see DiskPressure). When the state directory's filesystem is full, the busy agents with
   * homes on it are frozen and the space Warren holds back is released at once, before anything
   * is written; the agents not found responsible then go on.
   */
  relieveDisk(nowMs: number, fresh = false): void {
    this.diskPressure.check(this.diskReserve.check(nowMs, fresh), nowMs, {
      busy: () => this.busyHomes(),
      full: (agents, freeBytes) => {
        for (const name of agents) this.agents.handles.get(name)?.instance.freeze();
        this.releaseDiskReserve(`the filesystem of the state directory is full (${formatBytes(freeBytes)} free)`);
      },
      stop: (offender) => {
        try {
          this.stopForDisk(offender.agent, offender.detail, offender.usedBytes, offender.limitBytes, offender);
        } catch (error) {
          this.ctx.log.error({ err: error, agent: offender.agent }, 'cannot stop the agent that filled the disk');
        }
      },
      resume: (agents) => {
        for (const name of agents) {
          const agent = this.agents.handles.get(name);
          if (agent && !this.agents.isStopping(name)) agent.instance.thaw();
        }
      },
    });
  }

  /** Deletes the reserve file (see DiskReserve) so Warren's own writes have room; logs why. */
  private releaseDiskReserve(why: string): void {
    const released = this.diskReserve.release();
    if (released > 0) this.ctx.log.warn({ releasedBytes: released }, `disk: ${why}; released the ${formatBytes(released)} held for Warren's own writes`);
  }

  /**
   * Whether new work may start: not while free space on the state directory's filesystem is below
   * the reserve. Each change is logged and audited once (`supervisor.disk_low`, `supervisor.disk_ok`).
   */
  diskAllowsWork(nowMs: number): boolean {
    const { ctx } = this;
    const reading = this.diskReserve.check(nowMs);
    if (reading.changed) {
      const details = { stateDir: ctx.config.stateDir, freeBytes: reading.freeBytes, reserveBytes: reading.reserveBytes };
      const space = `${formatBytes(reading.freeBytes)} free, reserve ${formatBytes(reading.reserveBytes)}`;
      const message = reading.low
        ? `disk: free space of the state directory's filesystem is below the reserve (${space}); no new work starts until space returns`
        : `disk: free space is above the reserve again (${space}); work resumes`;
      try {
        ctx.emit({ actor: SUPERVISOR, action: reading.low ? 'supervisor.disk_low' : 'supervisor.disk_ok', object: 'supervisor', details }, { message });
      } catch (error) {
        ctx.log.error({ err: error }, 'cannot record the disk reading in the audit trail');
      }
    }
    return !reading.low;
  }
}
