/**
 * The scheduler's and the kubelet's part in the fake Kubernetes API server: the pod hooks, and the
 * status changes behind `setPodPhase`, `runPod`, `finishPod`, `oomKillPod` and `evictPod`.
 */
import { PODS, record, type FakeKubeContext, type Json } from './context.js';
import { nowTimestamp, randomSuffix } from './store.js';
import type { FakeContainerStatus, FakePodExit, FakePodStatusUpdate, KubeObject, StartFakeKubeApiOptions } from './types.js';

/**
 * Runs a pod hook on a copy of the pod once the request that caused it has been answered, then
 * `then` (neither once the server is closing). What the hook throws is kept in `hookErrors`.
 */
export function runHook(ctx: FakeKubeContext, hook: StartFakeKubeApiOptions['onPodCreated'], pod: KubeObject, then?: () => void): void {
  const copy = structuredClone(pod);
  const run = async (): Promise<void> => {
    // After the request that caused it has been answered, as the kubelet acts after the write.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      if (hook !== undefined && !ctx.closing()) await hook(copy, ctx.api());
    } catch (error) {
      ctx.hookErrors.push(error);
    }
    if (!ctx.closing()) then?.();
  };
  // run() never rejects: a hook's failure is kept in ctx.hookErrors.
  run().catch(() => undefined);
}

/**
 * The stored pod.
 * @throws {Error} when there is none.
 */
export function requirePod(ctx: FakeKubeContext, namespace: string, name: string): KubeObject {
  const pod = ctx.store.get(PODS, namespace, name);
  if (pod === undefined) throw new Error(`fake kube API: pods "${name}" not found in namespace "${namespace}"`);
  return pod;
}

function containerNames(pod: KubeObject, listName: 'containers' | 'initContainers'): { name: string; image: string }[] {
  const containers = record(pod.spec)[listName];
  return (Array.isArray(containers) ? containers : []).map((c) => ({ name: String(record(c).name), image: String(record(c).image) }));
}

const baseStatus = (container: { name: string; image: string }): FakeContainerStatus => ({
  name: container.name,
  ready: false,
  restartCount: 0,
  image: container.image,
  imageID: `${container.image}@sha256:${'0'.repeat(64)}`,
  containerID: `containerd://${container.name}-${randomSuffix()}`,
});

/** `FakeKubeApi.setPodPhase`: binds the pod to a node unless it stays `Pending`, sets the status fields given (one MODIFIED event). */
export function setPodPhase(ctx: FakeKubeContext, namespace: string, name: string, update: FakePodStatusUpdate): KubeObject {
  const pod = requirePod(ctx, namespace, name);
  const next = structuredClone(pod);
  const spec = (next.spec = record(next.spec));
  const status = (next.status = record(next.status));
  const now = nowTimestamp();
  if (update.phase !== 'Pending' || update.nodeName !== undefined) {
    if (typeof spec.nodeName !== 'string' || spec.nodeName === '') spec.nodeName = update.nodeName ?? ctx.nodeName;
    status.hostIP ??= '127.0.0.1';
    status.startTime ??= now;
    const conditions = Array.isArray(status.conditions) ? (status.conditions as Json[]) : [];
    if (!conditions.some((c) => c.type === 'PodScheduled')) {
      status.conditions = [...conditions, { type: 'PodScheduled', status: 'True', lastTransitionTime: now }];
    }
  }
  status.phase = update.phase;
  for (const field of ['reason', 'message', 'containerStatuses', 'initContainerStatuses', 'podIP'] as const) {
    if (update[field] !== undefined) status[field] = structuredClone(update[field]);
  }
  if (update.podIP !== undefined) status.podIPs = [{ ip: update.podIP }];
  if (update.conditions !== undefined) {
    const given = update.conditions.map((c) => ({ lastTransitionTime: now, ...c }));
    const kept = (Array.isArray(status.conditions) ? (status.conditions as Json[]) : []).filter((c) => !given.some((g) => g.type === c.type));
    status.conditions = [...kept, ...given];
  }
  return structuredClone(ctx.store.update(PODS, next, false));
}

/** `FakeKubeApi.runPod`: the pod `Running` with every container running and ready. */
export function runPod(ctx: FakeKubeContext, namespace: string, name: string): KubeObject {
  const pod = requirePod(ctx, namespace, name);
  const now = nowTimestamp();
  const containers = containerNames(pod, 'containers');
  return setPodPhase(ctx, namespace, name, {
    phase: 'Running',
    podIP: '127.0.0.1',
    containerStatuses: containers.map((c) => ({ ...baseStatus(c), ready: true, started: true, state: { running: { startedAt: now } } })),
    conditions: ['Initialized', 'Ready', 'ContainersReady'].map((type) => ({ type, status: 'True' as const })),
  });
}

/** `FakeKubeApi.finishPod`: containers terminate with an exit code; the phase follows the restart policy. */
export function finishPod(ctx: FakeKubeContext, namespace: string, name: string, exit: FakePodExit): KubeObject {
  const pod = requirePod(ctx, namespace, name);
  const spec = record(pod.spec);
  const now = nowTimestamp();
  const previous = record(pod.status).containerStatuses;
  const previousByName = new Map((Array.isArray(previous) ? (previous as FakeContainerStatus[]) : []).map((s) => [s.name, s]));
  const ending = new Set(exit.containers ?? containerNames(pod, 'containers').map((c) => c.name));
  const reason = exit.reason ?? (exit.exitCode === 0 ? 'Completed' : 'Error');
  const restartPolicy = spec.restartPolicy;
  const restarts = restartPolicy === 'Always' || (restartPolicy === 'OnFailure' && exit.exitCode !== 0);
  const statuses = containerNames(pod, 'containers').map((c): FakeContainerStatus => {
    const before = previousByName.get(c.name) ?? baseStatus(c);
    if (!ending.has(c.name)) return before;
    const startedAt = before.state?.running?.startedAt ?? now;
    const terminated = {
      exitCode: exit.exitCode,
      reason,
      ...(exit.message === undefined ? {} : { message: exit.message }),
      startedAt,
      finishedAt: now,
      ...(before.containerID === undefined ? {} : { containerID: before.containerID }),
    };
    if (restarts) {
      return {
        ...before,
        ready: false,
        started: false,
        restartCount: before.restartCount + 1,
        lastState: { terminated },
        state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 10s restarting failed container=${c.name} pod=${name}_${namespace}(${pod.metadata?.uid ?? ''})` } },
      };
    }
    return { ...before, ready: false, started: false, state: { terminated } };
  });
  const allEnded = statuses.every((s) => s.state?.terminated !== undefined);
  const failed = statuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
  const phase = restarts || !allEnded ? 'Running' : failed ? 'Failed' : 'Succeeded';
  return setPodPhase(ctx, namespace, name, {
    phase,
    containerStatuses: statuses,
    conditions: [
      { type: 'Ready', status: 'False', reason: phase === 'Running' ? 'ContainersNotReady' : 'PodCompleted' },
      { type: 'ContainersReady', status: 'False', reason: phase === 'Running' ? 'ContainersNotReady' : 'PodCompleted' },
    ],
  });
}

/** `FakeKubeApi.evictPod`: `Failed`, reason `Evicted`, a `DisruptionTarget` condition. */
export function evictPod(ctx: FakeKubeContext, namespace: string, name: string, message?: string): KubeObject {
  const pod = requirePod(ctx, namespace, name);
  const now = nowTimestamp();
  const text = message ?? 'The node was low on resource: memory. ';
  const previous = record(pod.status).containerStatuses;
  const previousByName = new Map((Array.isArray(previous) ? (previous as FakeContainerStatus[]) : []).map((s) => [s.name, s]));
  return setPodPhase(ctx, namespace, name, {
    phase: 'Failed',
    reason: 'Evicted',
    message: text,
    containerStatuses: containerNames(pod, 'containers').map((c) => {
      const before = previousByName.get(c.name) ?? baseStatus(c);
      return { ...before, ready: false, started: false, state: { terminated: { exitCode: 137, reason: 'Error', startedAt: before.state?.running?.startedAt ?? now, finishedAt: now } } };
    }),
    conditions: [
      { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: text },
      { type: 'Ready', status: 'False', reason: 'PodFailed' },
      { type: 'ContainersReady', status: 'False', reason: 'PodFailed' },
    ],
  });
}
