import type { AgentPodSpec } from '@warren/kube';

/** An NKey user seed shaped as the spec wants (`SU` and 56 base32 characters); no key was ever made from it. */
export const FAKE_SEED = `SU${'A'.repeat(56)}`;

/** The least an `AgentPodSpec` holds: every optional field takes its default. */
export function minimalSpec(overrides: Partial<AgentPodSpec> = {}): AgentPodSpec {
  return {
    agent: 'coder-1',
    template: 'coder',
    uid: 10001,
    gid: 10001,
    image: 'ghcr.io/warren/agent-runner:0.1.0',
    command: ['warren-agent-runner'],
    brokerEndpoints: [{ cidr: '10.0.0.7', port: 4222 }],
    nats: { servers: ['nats://10.0.0.7:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.coder-1' },
    ...overrides,
  };
}

/** A spec with every optional field set to something other than its default. */
export function fullSpec(overrides: Partial<AgentPodSpec> = {}): AgentPodSpec {
  return {
    agent: 'reviewer-12',
    template: 'reviewer',
    namespace: 'warren',
    uid: 20012,
    gid: 20000,
    image: 'registry.example.com/warren/agent-runner@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    imagePullPolicy: 'Always',
    command: ['/usr/bin/node', '/opt/warren/runner.mjs', '--agent', 'reviewer-12'],
    env: { WARREN_AGENT: 'reviewer-12', LANG: 'C.UTF-8' },
    homePath: '/home/reviewer-12',
    resources: { cpuMillis: 500, memoryMaxBytes: 768 * 1024 * 1024, tmpSizeBytes: 100_000_000, pidsMax: 256 },
    homeSizeBytes: 5 * 1024 ** 3,
    storageClassName: 'fast-ssd',
    labels: { team: 'review', 'example.com/cost-center': 'r-and-d' },
    runtimeClassName: 'gvisor',
    brokerEndpoints: [
      { podLabels: { 'app.kubernetes.io/name': 'nats' }, namespaceLabels: { 'kubernetes.io/metadata.name': 'warren-system' }, port: 4222 },
      { cidr: 'fd00::7', port: 4222 },
    ],
    gatewayEndpoints: [{ cidr: '10.0.3.0/24', port: 8080 }],
    allowDns: true,
    nats: { servers: ['nats://nats.warren-system:4222', 'tls://[fd00::7]:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.reviewer-12' },
    ...overrides,
  };
}
