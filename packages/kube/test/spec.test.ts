import { describe, expect, it } from 'vitest';
import { AGENT_POD_DEFAULTS, AgentPodSpecError, agentManifests, podManifest, resolveAgentPodSpec } from '@warren/kube';
import type { AgentPodSpec } from '@warren/kube';
import { minimalSpec } from './support.js';

describe('resolveAgentPodSpec', () => {
  it('applies the documented defaults', () => {
    const spec = resolveAgentPodSpec(minimalSpec());
    expect(spec).toMatchObject({
      namespace: undefined,
      imagePullPolicy: AGENT_POD_DEFAULTS.imagePullPolicy,
      env: {},
      homePath: '/home/agent',
      resources: { cpuMillis: 1000, memoryMaxBytes: 1024 ** 3, tmpSizeBytes: 64 * 1024 ** 2, pidsMax: undefined },
      homeSizeBytes: 1024 ** 3,
      storageClassName: undefined,
      labels: {},
      runtimeClassName: undefined,
      gatewayEndpoints: [],
      allowDns: false,
    });
  });

  it('fills resource defaults when only some are given', () => {
    expect(resolveAgentPodSpec(minimalSpec({ resources: { cpuMillis: 250 } })).resources).toEqual({
      cpuMillis: 250,
      memoryMaxBytes: AGENT_POD_DEFAULTS.memoryMaxBytes,
      tmpSizeBytes: AGENT_POD_DEFAULTS.tmpSizeBytes,
      pidsMax: undefined,
    });
  });

  const seed = `SU${'A'.repeat(56)}`;
  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ['agent empty', { agent: '' }, 'agent', /must not be empty/],
    ['agent with a space', { agent: 'coder 1' }, 'agent', /label value/],
    ['agent too long for a label value', { agent: 'a'.repeat(64) }, 'agent', /label value/],
    ['template missing', { template: undefined }, 'template', /is required/],
    ['namespace with capitals', { namespace: 'Warren' }, 'namespace', /DNS-1123 label/],
    ['uid 0', { uid: 0 }, 'uid', /never root/],
    ['uid not an integer', { uid: 1.5 }, 'uid', /integer/],
    ['uid too large', { uid: 2 ** 31 }, 'uid', /at most 2147483647/],
    ['gid 0', { gid: 0 }, 'gid', /never root/],
    ['gid a string', { gid: '100' }, 'gid', /number/],
    ['image with whitespace', { image: 'a b' }, 'image', /image reference/],
    ['image pull policy unknown', { imagePullPolicy: 'Sometimes' }, 'imagePullPolicy', /Always|IfNotPresent/],
    ['no command', { command: [] }, 'command', /program to run/],
    ['env name with a dash', { env: { 'MY-VAR': 'x' } }, 'env.MY-VAR', /environment variable name/],
    ['env HOME', { env: { HOME: '/root' } }, 'env.HOME', /homePath/],
    ['relative homePath', { homePath: 'home/agent' }, 'homePath', /absolute path/],
    ['homePath with a trailing slash', { homePath: '/home/agent/' }, 'homePath', /trailing/],
    ['homePath under /tmp', { homePath: '/tmp/agent' }, 'homePath', /\/tmp/],
    ['homePath with ..', { homePath: '/home/../etc' }, 'homePath', /\.\./],
    ['memory 0 bytes', { resources: { memoryMaxBytes: 0 } }, 'resources.memoryMaxBytes', /at least 1/],
    ['cpu as a quantity string', { resources: { cpuMillis: '500m' } }, 'resources.cpuMillis', /number/],
    ['unknown resource', { resources: { cpu: 1 } }, 'resources.cpu', /not an AgentPodSpec field/],
    ['homeSizeBytes negative', { homeSizeBytes: -1 }, 'homeSizeBytes', /at least 1/],
    ['storage class with capitals', { storageClassName: 'Fast' }, 'storageClassName', /DNS-1123 subdomain/],
    ['label key with two slashes', { labels: { 'a/b/c': 'x' } }, 'labels.a/b/c', /label key/],
    ['label value with a space', { labels: { team: 'a b' } }, 'labels.team', /label value/],
    ['label Warren sets', { labels: { 'warren.dev/agent': 'other' } }, 'labels.warren.dev/agent', /Warren sets/],
    ['runtime class with an underscore', { runtimeClassName: 'g_visor' }, 'runtimeClassName', /RuntimeClass/],
    ['no broker endpoint', { brokerEndpoints: [] }, 'brokerEndpoints', /at least one/],
    ['broker endpoint with a bad CIDR', { brokerEndpoints: [{ cidr: '10.0.0.0/33', port: 4222 }] }, 'brokerEndpoints[0].cidr', /CIDR/],
    ['broker endpoint with a host name', { brokerEndpoints: [{ cidr: 'nats.example.com', port: 4222 }] }, 'brokerEndpoints[0].cidr', /CIDR/],
    ['broker port 0', { brokerEndpoints: [{ cidr: '10.0.0.7', port: 0 }] }, 'brokerEndpoints[0].port', /port/],
    ['gateway endpoint of neither shape', { gatewayEndpoints: [{ host: 'x', port: 80 }] }, 'gatewayEndpoints[0]', /cidr, port.*podLabels/],
    ['allowDns a string', { allowDns: 'yes' }, 'allowDns', /boolean/],
    ['nats missing', { nats: undefined }, 'nats', /is required/],
    ['nats server over http', { nats: { servers: ['http://a:4222'], nkeySeed: seed, inboxPrefix: '_INBOX.a' } }, 'nats.servers[0]', /NATS URL/],
    ['nats seed of an account', { nats: { servers: ['nats://a:4222'], nkeySeed: `SA${'A'.repeat(56)}`, inboxPrefix: '_INBOX.a' } }, 'nats.nkeySeed', /NKey user seed/],
    ['nats inbox prefix with a wildcard', { nats: { servers: ['nats://a:4222'], nkeySeed: seed, inboxPrefix: '_INBOX.>' } }, 'nats.inboxPrefix', /wildcards/],
    ['an unknown field', { replicas: 2 }, 'replicas', /not an AgentPodSpec field/],
  ];
  it.each(bad)('rejects %s, naming the field', (_title, overrides, field, message) => {
    const spec: AgentPodSpec = { ...minimalSpec(), ...overrides };
    let caught: unknown;
    try {
      resolveAgentPodSpec(spec);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AgentPodSpecError);
    const error = caught as AgentPodSpecError;
    expect(error.code).toBe('WARREN_KUBE_SPEC');
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`AgentPodSpec.${field}: `)).toBe(true);
    expect(error.message).toMatch(message);
    // Every builder checks the spec the same way.
    expect(() => podManifest(spec)).toThrow(AgentPodSpecError);
    expect(() => agentManifests(spec)).toThrow(AgentPodSpecError);
  });
});
