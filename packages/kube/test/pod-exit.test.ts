import { expect, test } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { podOutcome } from '@warren/kube';

const pod = (status: V1Pod['status']): V1Pod => ({ metadata: { name: 'warren-coder-1' }, status });
const terminated = (exitCode: number, reason?: string, signal?: number) => ({
  containerStatuses: [{ name: 'agent', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason, signal } } }],
});

test.each([
  ['Pending', pod({ phase: 'Pending' }), null],
  ['Running', pod({ phase: 'Running' }), null],
  ['Succeeded', pod({ phase: 'Succeeded', ...terminated(0, 'Completed') }), { exit: { kind: 'succeeded', exitCode: 0 }, reason: 'Completed' }],
  ['Failed 2', pod({ phase: 'Failed', ...terminated(2, 'Error') }), { exit: { kind: 'failed', exitCode: 2 }, reason: 'Error' }],
  ['OOMKilled', pod({ phase: 'Failed', ...terminated(137, 'OOMKilled') }), { exit: { kind: 'oom' }, reason: 'OOMKilled' }],
  ['a signal', pod({ phase: 'Failed', ...terminated(143, 'Error', 15) }), { exit: { kind: 'signaled', signal: 'SIGTERM' }, reason: 'Error' }],
  ['Evicted', pod({ phase: 'Failed', reason: 'Evicted', message: 'low on memory', ...terminated(137, 'Error') }), { exit: { kind: 'signaled', signal: 'SIGKILL' }, reason: 'Evicted: low on memory' }],
  [
    'Failed before running',
    pod({ phase: 'Failed', reason: 'UnexpectedAdmissionError', message: 'no device' }),
    { exit: { kind: 'setup_error', message: 'pod warren-coder-1 failed before its container ran (UnexpectedAdmissionError: no device)' }, reason: 'UnexpectedAdmissionError: no device' },
  ],
])('podOutcome: %s', (_name, input, expected) => {
  expect(podOutcome(input)).toEqual(expected);
});
