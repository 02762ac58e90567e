import { describe, expect, it } from 'vitest';
import {
  AgentSpecError,
  AgentStatus,
  addAgent,
  createAgentWorld,
  lifecycleSystem,
  livenessSystem,
  recordHeartbeat,
  removeAgent,
  setLoad,
  setStatus,
  type AgentSpec,
} from '@warren/ecs';
import { agentSpec } from './support.js';

const spec = (name: string, over: Partial<AgentSpec> = {}): AgentSpec => agentSpec(name, { wipLimit: 2, resources: { memoryMaxBytes: 0, pidsMax: 0, cpuWeight: 100 }, ...over });

describe('livenessSystem', () => {
  it('flags running agents silent for longer than the timeout, and only those', () => {
    const world = createAgentWorld();
    for (const name of ['beating', 'silent', 'fresh', 'never', 'sleeping', 'stopped', 'pending']) addAgent(world, spec(name));
    setStatus(world, 'beating', AgentStatus.busy, 1_000);
    recordHeartbeat(world, 'beating', 9_500);
    setStatus(world, 'silent', AgentStatus.idle, 1_000);
    recordHeartbeat(world, 'silent', 2_000);
    setStatus(world, 'fresh', AgentStatus.starting, 9_000); // just started: gets a full timeout
    setStatus(world, 'never', AgentStatus.starting, 1_000);
    setStatus(world, 'sleeping', AgentStatus.sleeping, 1_000);
    setStatus(world, 'stopped', AgentStatus.stopped, 1_000);
    expect(livenessSystem(world, { nowMs: 10_000, heartbeatTimeoutMs: 5_000 })).toEqual([
      { agent: 'never', reason: 'no heartbeat since it became starting 9000 ms ago (timeout 5000 ms)' },
      { agent: 'silent', reason: 'last heartbeat 8000 ms ago, idle for 9000 ms (timeout 5000 ms)' },
    ]);
    recordHeartbeat(world, 'silent', 9_999);
    removeAgent(world, 'never');
    expect(livenessSystem(world, { nowMs: 10_000, heartbeatTimeoutMs: 5_000 })).toEqual([]);
    expect(livenessSystem(world, { nowMs: 16_000, heartbeatTimeoutMs: 5_000 }).map((i) => i.agent)).toEqual(['beating', 'fresh', 'silent']);
  });

  it('counts a status change as being heard from', () => {
    const world = createAgentWorld();
    addAgent(world, spec('a'));
    setStatus(world, 'a', AgentStatus.idle, 1_000);
    recordHeartbeat(world, 'a', 1_000);
    setStatus(world, 'a', AgentStatus.busy, 8_000);
    expect(livenessSystem(world, { nowMs: 10_000, heartbeatTimeoutMs: 5_000 })).toEqual([]);
  });

  it('gives an idle agent its own, longer timeout, and a busy or starting one the heartbeat timeout', () => {
    const world = createAgentWorld();
    for (const name of ['idle', 'busy', 'starting', 'given']) addAgent(world, spec(name));
    setStatus(world, 'idle', AgentStatus.idle, 1_000);
    setStatus(world, 'busy', AgentStatus.busy, 1_000);
    setStatus(world, 'starting', AgentStatus.starting, 1_000);
    setStatus(world, 'given', AgentStatus.idle, 1_000);
    for (const name of ['idle', 'busy', 'starting', 'given']) recordHeartbeat(world, name, 2_000);
    // Given a task at 9 s: busy from then, its silence as a busy agent counts from then.
    setStatus(world, 'given', AgentStatus.busy, 9_000);
    const options = { heartbeatTimeoutMs: 5_000, idleHeartbeatTimeoutMs: 10_000 };
    expect(livenessSystem(world, { nowMs: 12_000, ...options })).toEqual([
      { agent: 'busy', reason: 'last heartbeat 10000 ms ago, busy for 11000 ms (timeout 5000 ms)' },
      { agent: 'starting', reason: 'last heartbeat 10000 ms ago, starting for 11000 ms (timeout 5000 ms)' },
    ]);
    expect(livenessSystem(world, { nowMs: 12_001, ...options }).map((i) => i.agent)).toEqual(['busy', 'idle', 'starting']);
    expect(livenessSystem(world, { nowMs: 14_001, ...options }).map((i) => i.agent)).toEqual(['busy', 'given', 'idle', 'starting']);
    expect(() => livenessSystem(world, { nowMs: 0, heartbeatTimeoutMs: 5_000, idleHeartbeatTimeoutMs: Number.NaN })).toThrow(AgentSpecError);
  });

  it('rejects a bad timeout', () => {
    expect(() => livenessSystem(createAgentWorld(), { nowMs: 0, heartbeatTimeoutMs: -1 })).toThrow(AgentSpecError);
  });
});

describe('lifecycleSystem', () => {
  it('puts sleep-mode agents idle for longer than sleepAfterIdleMs to sleep', () => {
    const world = createAgentWorld();
    addAgent(world, spec('idle-long', { lifecycle: 'sleep' }));
    addAgent(world, spec('idle-short', { lifecycle: 'sleep' }));
    addAgent(world, spec('busy', { lifecycle: 'sleep' }));
    addAgent(world, spec('loaded-idle', { lifecycle: 'sleep' }));
    addAgent(world, spec('keeper', { lifecycle: 'persistent' }));
    setStatus(world, 'idle-long', AgentStatus.idle, 1_000);
    setStatus(world, 'idle-short', AgentStatus.busy, 1_000);
    setStatus(world, 'idle-short', AgentStatus.idle, 8_000); // leaving busy marks it active
    setStatus(world, 'busy', AgentStatus.busy, 1_000);
    setStatus(world, 'loaded-idle', AgentStatus.idle, 1_000);
    setLoad(world, 'loaded-idle', 1);
    setStatus(world, 'keeper', AgentStatus.idle, 0);
    expect(lifecycleSystem(world, { nowMs: 10_000, sleepAfterIdleMs: 5_000 })).toEqual([{ agent: 'idle-long', action: 'sleep' }]);
    expect(lifecycleSystem(world, { nowMs: 13_001, sleepAfterIdleMs: 5_000 })).toEqual([
      { agent: 'idle-long', action: 'sleep' },
      { agent: 'idle-short', action: 'sleep' },
    ]);
  });

  it('takes sleepAfterIdleMs per template', () => {
    const world = createAgentWorld();
    addAgent(world, spec('quick', { lifecycle: 'sleep', template: 'quick' }));
    addAgent(world, spec('slow', { lifecycle: 'sleep', template: 'slow' }));
    setStatus(world, 'quick', AgentStatus.idle, 0);
    setStatus(world, 'slow', AgentStatus.idle, 0);
    const seen: string[] = [];
    const intents = lifecycleSystem(world, {
      nowMs: 5_000,
      sleepAfterIdleMs: (template) => {
        seen.push(template);
        return template === 'quick' ? 1_000 : 60_000;
      },
    });
    expect(intents).toEqual([{ agent: 'quick', action: 'sleep' }]);
    expect(seen.sort()).toEqual(['quick', 'slow']);
  });

  it('deletes autodelete agents once they have finished a task and are idle', () => {
    const world = createAgentWorld();
    addAgent(world, spec('done', { lifecycle: 'autodelete' }));
    addAgent(world, spec('fresh', { lifecycle: 'autodelete' }));
    addAgent(world, spec('working', { lifecycle: 'autodelete' }));
    setStatus(world, 'fresh', AgentStatus.idle, 100);
    for (const name of ['done', 'working']) {
      setStatus(world, name, AgentStatus.busy, 100);
      setLoad(world, name, 2);
    }
    setLoad(world, 'working', 1); // one finished, one still running
    setLoad(world, 'done', 0);
    setStatus(world, 'done', AgentStatus.idle, 200);
    expect(lifecycleSystem(world, { nowMs: 1_000_000, sleepAfterIdleMs: 0 })).toEqual([{ agent: 'done', action: 'delete' }]);
  });

  it('never puts persistent agents away', () => {
    const world = createAgentWorld();
    addAgent(world, spec('p', { lifecycle: 'persistent' }));
    setStatus(world, 'p', AgentStatus.busy, 0);
    setLoad(world, 'p', 1);
    setLoad(world, 'p', 0);
    setStatus(world, 'p', AgentStatus.idle, 1);
    expect(lifecycleSystem(world, { nowMs: 1e12, sleepAfterIdleMs: 0 })).toEqual([]);
  });
});
