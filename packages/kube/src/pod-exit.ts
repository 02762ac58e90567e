import { constants } from 'node:os';
import type { AgentExit } from '@warren/runtime';
import type { V1Pod } from '@kubernetes/client-node';
import { AGENT_CONTAINER_NAME } from './manifests.js';

/**
 * How a pod ended, as Warren's exit and the Kubernetes reason behind it (for logs and the audit).
 * `reason` is `<status.reason or terminated.reason>: <message>` when Kubernetes gave one, else null.
 */
export interface PodOutcome {
  readonly exit: AgentExit;
  readonly reason: string | null;
}

/** The signal name of a signal number (`9` → `SIGKILL`), or `SIG<n>` when the host does not know it. */
function signalName(signal: number): string {
  const found = Object.entries(constants.signals).find(([, value]) => value === signal);
  return found === undefined ? `SIG${signal}` : found[0];
}

function reasonText(reason: string | undefined, message: string | undefined): string | null {
  if (reason === undefined || reason === '') return null;
  return message === undefined || message.trim() === '' ? reason : `${reason}: ${message.trim()}`;
}

/**
 * The outcome of a pod that has finished, or null while it has not (phase `Pending`, `Running`,
 * `Unknown`). The mapping, in order, for the agent's container (`agent`, else the first one):
 * - pod `status.reason: Evicted` (node-pressure eviction; the kubelet kills the containers):
 *   `signaled` `SIGKILL`, reason `Evicted: <message>`.
 * - container `terminated.reason: OOMKilled` and a non-zero exit code: `oom`.
 * - `terminated.signal` set: `signaled` with that signal's name.
 * - phase `Succeeded`: `succeeded`.
 * - phase `Failed` with a non-zero `terminated.exitCode`: `failed` with that code.
 * - phase `Failed` without a terminated container (it never ran): `setup_error` with the pod's reason.
 * Follows the pod lifecycle of https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/.
 */
export function podOutcome(pod: V1Pod): PodOutcome | null {
  const status = pod.status;
  const phase = status?.phase;
  if (phase !== 'Succeeded' && phase !== 'Failed') return null;
  const statuses = status?.containerStatuses ?? [];
  const container = statuses.find((s) => s.name === AGENT_CONTAINER_NAME) ?? statuses[0];
  const terminated = container?.state?.terminated;
  if (status?.reason === 'Evicted') {
    return { exit: { kind: 'signaled', signal: 'SIGKILL' }, reason: reasonText('Evicted', status.message) };
  }
  const reason = reasonText(terminated?.reason ?? status?.reason, terminated?.message ?? status?.message);
  if (terminated !== undefined) {
    if (terminated.reason === 'OOMKilled' && terminated.exitCode !== 0) return { exit: { kind: 'oom' }, reason };
    if (terminated.signal !== undefined && terminated.signal !== 0) return { exit: { kind: 'signaled', signal: signalName(terminated.signal) }, reason };
  }
  if (phase === 'Succeeded') return { exit: { kind: 'succeeded', exitCode: 0 }, reason };
  if (terminated !== undefined && terminated.exitCode !== 0) return { exit: { kind: 'failed', exitCode: terminated.exitCode }, reason };
  return { exit: { kind: 'setup_error', message: `pod ${pod.metadata?.name ?? '?'} failed before its container ran${reason === null ? '' : ` (${reason})`}` }, reason };
}
