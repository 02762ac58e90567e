import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  agentManifests,
  assertValidManifest,
  agentResourceNames,
  bytesQuantity,
  checkRestricted,
  cpuQuantity,
  dns1123Label,
  isDns1123Label,
  natsCredentialsJson,
  networkPolicyManifest,
  podManifest,
  pvcManifest,
  secretManifest,
  serviceAccountManifest,
  validateManifest,
} from '@warren/kube';
import type { AgentManifests, AgentPodSpec } from '@warren/kube';
import { FAKE_SEED, fullSpec, minimalSpec } from './support.js';

const goldenDir = join(import.meta.dirname, 'golden');

/** The five objects in creation order. */
function listOf(m: AgentManifests) {
  return [m.serviceAccount, m.secret, m.persistentVolumeClaim, m.networkPolicy, m.pod];
}

/** The agent's five objects as one multi-document YAML file, in creation order. */
function renderYaml(spec: AgentPodSpec): string {
  return listOf(agentManifests(spec))
    .map((manifest) => stringify(manifest, { aliasDuplicateObjects: false, lineWidth: 0 }))
    .join('---\n');
}

describe('golden files', () => {
  // The files under test/golden are the reviewed output of the builders. After an intended change,
  // rewrite them with `UPDATE_GOLDEN=1 npx vitest run packages/kube/test/manifests.test.ts` and
  // review the diff before committing it.
  const cases: [string, AgentPodSpec][] = [
    ['minimal', minimalSpec()],
    ['full', fullSpec()],
  ];
  it.each(cases)('the %s spec renders as test/golden/<name>.yaml', (name, spec) => {
    const file = join(goldenDir, `${name}.yaml`);
    const actual = renderYaml(spec);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
    expect(existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1 to write it`).toBe(true);
    expect(actual).toBe(readFileSync(file, 'utf8'));
  });
});

describe('every built manifest', () => {
  const specs: [string, AgentPodSpec][] = [
    ['minimal', minimalSpec()],
    ['full', fullSpec()],
    ['long-named', minimalSpec({ agent: `a${'b'.repeat(60)}-1`, template: 'x'.repeat(63) })],
  ];
  it.each(specs)('of the %s spec passes the schema and the unknown-field check', (_name, spec) => {
    for (const manifest of listOf(agentManifests(spec))) expect(validateManifest(manifest)).toEqual([]);
  });
  it.each(specs)('of the %s spec makes a pod the restricted profile admits', (_name, spec) => {
    expect(checkRestricted(podManifest(spec))).toEqual([]);
  });
});

describe('podManifest', () => {
  it('runs the runner as the agent uid and gid with the restricted security context and a read-only root', () => {
    const pod = podManifest(minimalSpec());
    expect(pod.spec?.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const [container, ...others] = pod.spec?.containers ?? [];
    expect(others).toEqual([]);
    expect(container?.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
    expect(pod.spec?.restartPolicy).toBe('Never');
    expect(pod.spec?.serviceAccountName).toBe('warren-coder-1');
  });

  it('mounts the home PVC, an emptyDir /tmp and the credentials read-only with mode 0400', () => {
    const pod = podManifest(minimalSpec({ homePath: '/home/coder-1', resources: { tmpSizeBytes: 32 * 1024 * 1024 } }));
    expect(pod.spec?.containers[0]?.volumeMounts).toEqual([
      { name: 'home', mountPath: '/home/coder-1' },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'nats', mountPath: '/home/coder-1/.warren/nats.json', subPath: 'nats.json', readOnly: true },
    ]);
    expect(pod.spec?.volumes).toEqual([
      { name: 'home', persistentVolumeClaim: { claimName: 'warren-coder-1-home' } },
      { name: 'tmp', emptyDir: { sizeLimit: '32Mi' } },
      { name: 'nats', secret: { secretName: 'warren-coder-1-nats', defaultMode: 0o400, items: [{ key: 'nats.json', path: 'nats.json', mode: 0o400 }] } },
    ]);
  });

  it.each([
    [{}, { cpu: '1', memory: '1Gi' }, undefined],
    [{ cpuMillis: 250, memoryMaxBytes: 512 * 1024 * 1024 }, { cpu: '250m', memory: '512Mi' }, undefined],
    [{ cpuMillis: 2000, memoryMaxBytes: 1000, pidsMax: 64 }, { cpu: '2', memory: '1000' }, { 'warren.dev/pids-max': '64' }],
  ])('resources %j become requests and limits %j (annotations %j)', (resources, quantities, annotations) => {
    const pod = podManifest(minimalSpec({ resources }));
    expect(pod.spec?.containers[0]?.resources).toEqual({ requests: quantities, limits: quantities });
    expect(pod.metadata?.annotations).toEqual(annotations);
  });

  it('sets HOME to homePath and sorts the environment by name', () => {
    const pod = podManifest(minimalSpec({ env: { ZED: 'z', ALPHA: 'a' } }));
    expect(pod.spec?.containers[0]?.env).toEqual([
      { name: 'ALPHA', value: 'a' },
      { name: 'HOME', value: '/home/agent' },
      { name: 'ZED', value: 'z' },
    ]);
    expect(pod.spec?.containers[0]?.workingDir).toBe('/home/agent');
  });

  it.each([
    [undefined, undefined],
    ['gvisor', 'gvisor'],
    ['kata-qemu', 'kata-qemu'],
  ])('runtimeClassName %s gives spec.runtimeClassName %s', (runtimeClassName, expected) => {
    expect(podManifest(minimalSpec(runtimeClassName === undefined ? {} : { runtimeClassName })).spec?.runtimeClassName).toBe(expected);
  });

  it('labels every object with the app name, the agent, the template and the extra labels', () => {
    for (const manifest of listOf(agentManifests(minimalSpec({ namespace: 'agents', labels: { team: 'a' } })))) {
      expect(manifest.metadata?.labels).toEqual({
        'app.kubernetes.io/name': 'warren-agent',
        'app.kubernetes.io/managed-by': 'warren',
        'warren.dev/agent': 'coder-1',
        'warren.dev/template': 'coder',
        team: 'a',
      });
      expect(manifest.metadata?.namespace).toBe('agents');
    }
  });
});

describe('pvcManifest', () => {
  it.each([
    [{}, { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', resources: { requests: { storage: '1Gi' } } }],
    [
      { homeSizeBytes: 10 * 1024 ** 3, storageClassName: 'standard' },
      { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', storageClassName: 'standard', resources: { requests: { storage: '10Gi' } } },
    ],
  ])('%j gives the claim spec %j', (overrides, spec) => {
    const pvc = pvcManifest(minimalSpec(overrides));
    expect(pvc.metadata?.name).toBe('warren-coder-1-home');
    expect(pvc.spec).toEqual(spec);
  });
});

describe('secretManifest', () => {
  it('holds nats.json with the servers, the seed and the inbox prefix', () => {
    const spec = minimalSpec({ nats: { servers: ['nats://a:4222', 'nats://b:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.coder-1' } });
    const secret = secretManifest(spec);
    expect(secret.metadata?.name).toBe('warren-coder-1-nats');
    expect(secret.type).toBe('Opaque');
    expect(Object.keys(secret.data ?? {})).toEqual(['nats.json']);
    const content = Buffer.from(secret.data?.['nats.json'] ?? '', 'base64').toString('utf8');
    expect(content).toBe(natsCredentialsJson(spec));
    expect(JSON.parse(content)).toEqual({ servers: ['nats://a:4222', 'nats://b:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.coder-1' });
  });
});

describe('networkPolicyManifest', () => {
  it('selects the agent pod, denies all ingress and allows egress to the broker only', () => {
    const policy = networkPolicyManifest(minimalSpec());
    expect(policy.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'warren-agent', 'warren.dev/agent': 'coder-1' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.7/32' } }], ports: [{ protocol: 'TCP', port: 4222 }] }],
    });
  });

  it.each([
    [{ cidr: '10.1.0.0/16', port: 4222 }, { to: [{ ipBlock: { cidr: '10.1.0.0/16' } }], ports: [{ protocol: 'TCP', port: 4222 }] }],
    [{ cidr: 'fd00::1', port: 4222 }, { to: [{ ipBlock: { cidr: 'fd00::1/128' } }], ports: [{ protocol: 'TCP', port: 4222 }] }],
    [{ podLabels: { app: 'nats' }, port: 4222 }, { to: [{ podSelector: { matchLabels: { app: 'nats' } } }], ports: [{ protocol: 'TCP', port: 4222 }] }],
    [
      { podLabels: { app: 'nats' }, namespaceLabels: { team: 'infra' }, port: 7422 },
      { to: [{ podSelector: { matchLabels: { app: 'nats' } }, namespaceSelector: { matchLabels: { team: 'infra' } } }], ports: [{ protocol: 'TCP', port: 7422 }] },
    ],
  ])('the broker endpoint %j becomes the egress rule %j', (endpoint, rule) => {
    expect(networkPolicyManifest(minimalSpec({ brokerEndpoints: [endpoint] })).spec?.egress).toEqual([rule]);
  });

  it('adds the gateway after the broker, and DNS to kube-dns only when asked', () => {
    const egress = networkPolicyManifest(minimalSpec({ gatewayEndpoints: [{ cidr: '10.0.0.9', port: 8080 }], allowDns: true })).spec?.egress ?? [];
    expect(egress.map((rule) => rule.ports)).toEqual([
      [{ protocol: 'TCP', port: 4222 }],
      [{ protocol: 'TCP', port: 8080 }],
      [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    ]);
    expect(egress[2]?.to).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
    ]);
    expect(networkPolicyManifest(minimalSpec({ allowDns: false })).spec?.egress).toHaveLength(1);
  });
});

describe('serviceAccountManifest', () => {
  it('mounts no token', () => {
    expect(serviceAccountManifest(minimalSpec())).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        name: 'warren-coder-1',
        labels: { 'app.kubernetes.io/name': 'warren-agent', 'app.kubernetes.io/managed-by': 'warren', 'warren.dev/agent': 'coder-1', 'warren.dev/template': 'coder' },
      },
      automountServiceAccountToken: false,
    });
  });
});

describe('names', () => {
  it.each([
    ['coder-1', { pod: 'warren-coder-1', persistentVolumeClaim: 'warren-coder-1-home', secret: 'warren-coder-1-nats', networkPolicy: 'warren-coder-1', serviceAccount: 'warren-coder-1' }],
  ])('agent %s gets the names %j', (agent, names) => {
    expect(agentResourceNames(agent)).toEqual(names);
  });

  it('cuts a name over 63 characters and ends it in a hash, so names stay valid and distinct', () => {
    const long = `a${'b'.repeat(60)}-1`;
    const other = `a${'b'.repeat(60)}-2`;
    const names = agentResourceNames(long);
    for (const name of [names.pod, names.persistentVolumeClaim, names.secret, names.networkPolicy, names.serviceAccount]) {
      expect(isDns1123Label(name), name).toBe(true);
      expect(name).toMatch(/-[0-9a-f]{8}$/);
    }
    expect(agentResourceNames(long).pod).not.toBe(agentResourceNames(other).pod);
    expect(agentResourceNames(long).pod).not.toBe(agentResourceNames(long).persistentVolumeClaim);
  });

  it.each<[string[], RegExp]>([
    [['warren', 'Coder_1'], /^warren-coder-1-[0-9a-f]{8}$/],
    [['warren', 'coder.1'], /^warren-coder-1-[0-9a-f]{8}$/],
    [['warren', 'coder-1'], /^warren-coder-1$/],
  ])('dns1123Label(%j) matches %s (hash-suffixed when normalised)', (parts, pattern) => {
    expect(dns1123Label(...parts)).toMatch(pattern);
  });

  it('gives agents that normalise alike different names', () => {
    expect(dns1123Label('warren', 'Coder_1')).not.toBe(dns1123Label('warren', 'coder.1'));
  });
});

describe('quantities', () => {
  it.each([
    [1024 ** 3, '1Gi'],
    [3 * 1024 ** 2, '3Mi'],
    [1536, '1536'],
    [2048, '2Ki'],
    [1000, '1000'],
  ])('bytesQuantity(%d) is %s', (bytes, quantity) => {
    expect(bytesQuantity(bytes)).toBe(quantity);
  });
  it.each([
    [1000, '1'],
    [1500, '1500m'],
    [100, '100m'],
  ])('cpuQuantity(%d) is %s', (millis, quantity) => {
    expect(cpuQuantity(millis)).toBe(quantity);
  });
});

describe("the README's example", () => {
  it('builds objects that pass both checks', () => {
    const objects = agentManifests({
      agent: 'coder-1',
      template: 'coder',
      namespace: 'warren',
      uid: 10001,
      gid: 10001,
      image: 'ghcr.io/warren/agent-runner:0.1.0',
      command: ['warren-agent-runner'],
      resources: { cpuMillis: 500, memoryMaxBytes: 512 * 1024 * 1024, pidsMax: 256 },
      brokerEndpoints: [{ cidr: '10.0.0.7', port: 4222 }],
      nats: { servers: ['nats://10.0.0.7:4222'], nkeySeed: FAKE_SEED, inboxPrefix: '_INBOX.coder-1' },
    });
    for (const manifest of listOf(objects)) expect(() => assertValidManifest(manifest)).not.toThrow();
    expect(checkRestricted(objects.pod)).toEqual([]);
  });
});
