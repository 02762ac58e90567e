import { describe, expect, it } from 'vitest';
import { checkRestricted, podManifest, validateManifest } from '@warren/kube';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { minimalSpec } from './support.js';

/** A fresh pod of the builder, which passes the restricted profile. */
function basePod(): IPod {
  return podManifest(minimalSpec());
}

/** The base pod after `mutate`, as loosely typed JSON (mutations write fields the types forbid). */
function mutated(mutate: (pod: IPod & { spec: { containers: IContainer[] } }) => void): IPod {
  const pod = structuredClone(basePod()) as IPod & { spec: { containers: IContainer[] } };
  mutate(pod);
  return pod;
}

/** The agent container's securityContext of a mutable pod. */
function sc(pod: { spec: { containers: IContainer[] } }): NonNullable<IContainer['securityContext']> {
  const container = pod.spec.containers[0];
  if (container?.securityContext === undefined) throw new Error('the base pod has a container securityContext');
  return container.securityContext;
}

const C = 'spec.containers[0].securityContext';

describe('checkRestricted', () => {
  it('admits the pod the builder makes', () => {
    expect(checkRestricted(basePod())).toEqual([]);
  });

  const cases: [string, (pod: IPod & { spec: { containers: IContainer[] } }) => void, [string, string][]][] = [
    ['a privileged container', (p) => void (sc(p).privileged = true), [['privileged', `${C}.privileged`]]],
    [
      'a hostPath volume',
      (p) => void p.spec.volumes?.push({ name: 'host', hostPath: { path: '/etc' } }),
      [
        ['hostPathVolumes', 'spec.volumes[3].hostPath'],
        ['restrictedVolumes', 'spec.volumes[3].hostPath'],
      ],
    ],
    ['hostNetwork', (p) => void (p.spec.hostNetwork = true), [['hostNamespaces', 'spec.hostNetwork']]],
    ['hostPID', (p) => void (p.spec.hostPID = true), [['hostNamespaces', 'spec.hostPID']]],
    ['hostIPC', (p) => void (p.spec.hostIPC = true), [['hostNamespaces', 'spec.hostIPC']]],
    [
      'an added capability outside the baseline set',
      (p) => void (sc(p).capabilities = { drop: ['ALL'], add: ['SYS_ADMIN'] }),
      [
        ['capabilities_baseline', `${C}.capabilities.add[0]`],
        ['capabilities_restricted', `${C}.capabilities.add[0]`],
      ],
    ],
    ['an added baseline capability other than NET_BIND_SERVICE', (p) => void (sc(p).capabilities = { drop: ['ALL'], add: ['CHOWN'] }), [['capabilities_restricted', `${C}.capabilities.add[0]`]]],
    ['capabilities not dropped', (p) => void (sc(p).capabilities = { drop: ['NET_RAW'] }), [['capabilities_restricted', `${C}.capabilities.drop`]]],
    ['runAsUser 0 on the pod', (p) => void (p.spec.securityContext = { ...p.spec.securityContext, runAsUser: 0 }), [['runAsUser', 'spec.securityContext.runAsUser']]],
    ['runAsUser 0 on the container', (p) => void (sc(p).runAsUser = 0), [['runAsUser', `${C}.runAsUser`]]],
    [
      'no seccomp profile anywhere',
      (p) => {
        delete p.spec.securityContext?.seccompProfile;
        delete sc(p).seccompProfile;
      },
      [['seccompProfile_restricted', `${C}.seccompProfile.type`]],
    ],
    [
      'an Unconfined seccomp profile on the container',
      (p) => void (sc(p).seccompProfile = { type: 'Unconfined' }),
      [
        ['seccompProfile_baseline', `${C}.seccompProfile.type`],
        ['seccompProfile_restricted', `${C}.seccompProfile.type`],
      ],
    ],
    ['allowPrivilegeEscalation true', (p) => void (sc(p).allowPrivilegeEscalation = true), [['allowPrivilegeEscalation', `${C}.allowPrivilegeEscalation`]]],
    ['allowPrivilegeEscalation unset', (p) => void delete sc(p).allowPrivilegeEscalation, [['allowPrivilegeEscalation', `${C}.allowPrivilegeEscalation`]]],
    ['runAsNonRoot false on the pod', (p) => void (p.spec.securityContext = { ...p.spec.securityContext, runAsNonRoot: false }), [['runAsNonRoot', 'spec.securityContext.runAsNonRoot']]],
    [
      'runAsNonRoot set nowhere',
      (p) => {
        delete p.spec.securityContext?.runAsNonRoot;
        delete sc(p).runAsNonRoot;
      },
      [['runAsNonRoot', `${C}.runAsNonRoot`]],
    ],
    ['a host port', (p) => void (p.spec.containers[0]!.ports = [{ containerPort: 8080, hostPort: 8080 }]), [['hostPorts', 'spec.containers[0].ports[0].hostPort']]],
    [
      'a probe and a lifecycle hook aimed at another host',
      (p) =>
        void Object.assign(p.spec.containers[0]!, {
          livenessProbe: { httpGet: { host: '169.254.169.254', port: 80, path: '/' } },
          readinessProbe: { tcpSocket: { host: '', port: 4222 } },
          lifecycle: { preStop: { tcpSocket: { host: '10.0.0.1', port: 22 } } },
        }),
      [
        ['hostProbesAndLifecycleHooks', 'spec.containers[0].livenessProbe.httpGet.host'],
        ['hostProbesAndLifecycleHooks', 'spec.containers[0].lifecycle.preStop.tcpSocket.host'],
      ],
    ],
    ['an unmasked /proc', (p) => void (sc(p).procMount = 'Unmasked'), [['procMount', `${C}.procMount`]]],
    [
      'an unsafe sysctl',
      (p) => void (p.spec.securityContext = { ...p.spec.securityContext, sysctls: [{ name: 'net.ipv4.tcp_syncookies', value: '1' }, { name: 'kernel.msgmax', value: '65536' }] }),
      [['sysctls', 'spec.securityContext.sysctls[1].name']],
    ],
    ['an Unconfined AppArmor profile', (p) => void (sc(p).appArmorProfile = { type: 'Unconfined' }), [['appArmorProfile', `${C}.appArmorProfile.type`]]],
    [
      'an unconfined AppArmor annotation',
      (p) => void (p.metadata = { ...p.metadata, annotations: { 'container.apparmor.security.beta.kubernetes.io/agent': 'unconfined' } }),
      [['appArmorProfile', 'metadata.annotations[container.apparmor.security.beta.kubernetes.io/agent]']],
    ],
    [
      'an SELinux type and user of its own',
      (p) => void (sc(p).seLinuxOptions = { type: 'spc_t', user: 'system_u', level: 's0:c1,c2' }),
      [
        ['seLinuxOptions', `${C}.seLinuxOptions.type`],
        ['seLinuxOptions', `${C}.seLinuxOptions.user`],
      ],
    ],
    ['a Windows HostProcess container', (p) => void (sc(p).windowsOptions = { hostProcess: true }), [['windowsHostProcess', `${C}.windowsOptions.hostProcess`]]],
    [
      'a privileged init container without a security context of its own',
      (p) => void (p.spec.initContainers = [{ name: 'init', image: 'busybox', securityContext: { privileged: true } }]),
      [
        ['privileged', 'spec.initContainers[0].securityContext.privileged'],
        ['allowPrivilegeEscalation', 'spec.initContainers[0].securityContext.allowPrivilegeEscalation'],
        ['capabilities_restricted', 'spec.initContainers[0].securityContext.capabilities.drop'],
      ],
    ],
    [
      'an ephemeral debug container',
      (p) => void (p.spec.ephemeralContainers = [{ name: 'debug', image: 'busybox' }]),
      [
        ['allowPrivilegeEscalation', 'spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation'],
        ['capabilities_restricted', 'spec.ephemeralContainers[0].securityContext.capabilities.drop'],
      ],
    ],
    ['a volume without a source', (p) => void p.spec.volumes?.push({ name: 'empty' }), [['restrictedVolumes', 'spec.volumes[3]']]],
    ['a volume type outside the restricted list', (p) => void p.spec.volumes?.push({ name: 'nfs', nfs: { server: '10.0.0.1', path: '/x' } }), [['restrictedVolumes', 'spec.volumes[3].nfs']]],
  ];

  it.each(cases)('rejects %s, naming the rule and the field path', (_title, mutate, expected) => {
    const violations = checkRestricted(mutated(mutate));
    expect(violations.map((v) => [v.rule, v.path])).toEqual(expected);
    for (const v of violations) {
      expect(v.message.length).toBeGreaterThan(0);
      expect(v.level).toBe(v.rule.endsWith('_restricted') || ['restrictedVolumes', 'allowPrivilegeEscalation', 'runAsNonRoot', 'runAsUser'].includes(v.rule) ? 'restricted' : 'baseline');
    }
  });

  const allowed: [string, (pod: IPod & { spec: { containers: IContainer[] } }) => void][] = [
    ['NET_BIND_SERVICE added', (p) => void (sc(p).capabilities = { drop: ['ALL'], add: ['NET_BIND_SERVICE'] })],
    ['seccomp only on the pod', (p) => void delete sc(p).seccompProfile],
    ['a Localhost seccomp profile', (p) => void (sc(p).seccompProfile = { type: 'Localhost', localhostProfile: 'profiles/agent.json' })],
    ['runAsNonRoot only on the pod', (p) => void delete sc(p).runAsNonRoot],
    ['host port 0', (p) => void (p.spec.containers[0]!.ports = [{ containerPort: 8080, hostPort: 0 }])],
    ['a safe sysctl', (p) => void (p.spec.securityContext = { ...p.spec.securityContext, sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] })],
    ['a RuntimeDefault AppArmor profile', (p) => void (sc(p).appArmorProfile = { type: 'RuntimeDefault' })],
    ['the container_t SELinux type', (p) => void (sc(p).seLinuxOptions = { type: 'container_t', level: 's0:c1,c2' })],
    ['a projected, configMap and downwardAPI volume', (p) => void p.spec.volumes?.push({ name: 'cm', configMap: { name: 'x' } }, { name: 'dapi', downwardAPI: { items: [] } }, { name: 'proj', projected: { sources: [] } })],
    [
      'a Windows pod without the Linux-only fields',
      (p) => {
        p.spec.os = { name: 'windows' };
        delete sc(p).allowPrivilegeEscalation;
        delete sc(p).capabilities;
        delete sc(p).seccompProfile;
        delete p.spec.securityContext?.seccompProfile;
      },
    ],
  ];
  it.each(allowed)('admits %s', (_title, mutate) => {
    expect(checkRestricted(mutated(mutate))).toEqual([]);
  });

  it('reports every violation of a pod that breaks several controls, baseline ones first', () => {
    const pod = mutated((p) => {
      p.spec.hostNetwork = true;
      sc(p).privileged = true;
      sc(p).allowPrivilegeEscalation = true;
      sc(p).runAsUser = 0;
    });
    expect(checkRestricted(pod).map((v) => `${v.level}:${v.rule}`)).toEqual(['baseline:hostNamespaces', 'baseline:privileged', 'restricted:allowPrivilegeEscalation', 'restricted:runAsUser']);
  });

  it('takes malformed input without throwing', () => {
    expect(() => checkRestricted('not a pod')).not.toThrow();
    expect(() => checkRestricted({ spec: { containers: 'x', volumes: [null, 3], securityContext: [] } })).not.toThrow();
    expect(checkRestricted({ spec: { containers: [] } }).map((v) => v.path)).toEqual(['spec.securityContext.runAsNonRoot']);
  });

  it('leaves a misspelt field to validateManifest, which names its path', () => {
    const pod = mutated((p) => void Object.assign(sc(p), { privilegd: true }));
    expect(checkRestricted(pod)).toEqual([]);
    expect(validateManifest(pod)).toEqual([{ path: `${C}.privilegd`, rule: 'unknown-field', message: 'is not a field of the schema' }]);
  });
});
