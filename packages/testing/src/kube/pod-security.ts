/**
 * Pod Security admission for the fake API server: the checks of the Pod Security Standards'
 * `baseline` and `restricted` profiles
 * (https://kubernetes.io/docs/concepts/security/pod-security-standards/), with the reasons and
 * details k8s.io/pod-security-admission writes, in its order (baseline checks, then restricted ones,
 * each by check id), so that a rejection reads
 * as a real cluster's: `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false
 * (container "c" must set securityContext.allowPrivilegeEscalation=false), …`.
 * Windows-only fields (`windowsOptions.hostProcess`) are not checked.
 */

/** The Pod Security Standards levels a namespace label `pod-security.kubernetes.io/enforce` names. */
export const PodSecurityLevel = {
  privileged: 'privileged',
  baseline: 'baseline',
  restricted: 'restricted',
} as const;
/** One of {@link PodSecurityLevel}'s values. */
export type PodSecurityLevel = (typeof PodSecurityLevel)[keyof typeof PodSecurityLevel];

/** One failed check: its reason and the detail naming the containers, volumes or fields at fault. */
export interface PodSecurityViolation {
  /** Short reason, such as `allowPrivilegeEscalation != false`. */
  readonly reason: string;
  /** What to change, such as `container "c" must set securityContext.allowPrivilegeEscalation=false`. */
  readonly detail: string;
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown): Json {
  return isRecord(value) ? value : {};
}

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

/** A JSON scalar as text (strings as they are); anything else as its JSON. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value) ?? '';
}

function pluralize(singular: string, plural: string, count: number): string {
  return count === 1 ? singular : plural;
}

function joinQuote(items: readonly string[]): string {
  return items.map((item) => JSON.stringify(item)).join(', ');
}

/** A container of any kind (init, regular, ephemeral) with its name and security context. */
interface ContainerView {
  readonly name: string;
  readonly securityContext: Json;
  readonly raw: Json;
}

function containersOf(spec: Json): ContainerView[] {
  return [...list(spec.initContainers), ...list(spec.containers), ...list(spec.ephemeralContainers)].map((raw) => ({
    name: typeof raw.name === 'string' ? raw.name : '',
    securityContext: record(raw.securityContext),
    raw,
  }));
}

const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
]);
const RESTRICTED_VOLUME_TYPES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const VOLUME_SOURCE_KEYS = [
  'hostPath', 'emptyDir', 'gcePersistentDisk', 'awsElasticBlockStore', 'gitRepo', 'secret', 'nfs', 'iscsi', 'glusterfs',
  'persistentVolumeClaim', 'rbd', 'flexVolume', 'cinder', 'cephfs', 'flocker', 'downwardAPI', 'fc', 'azureFile', 'configMap',
  'vsphereVolume', 'quobyte', 'azureDisk', 'photonPersistentDisk', 'projected', 'portworxVolume', 'scaleIO', 'storageos', 'csi',
  'ephemeral', 'image',
];
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes',
]);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

/** A check: its id (the order of the message), the level it belongs to, and what it finds. */
interface Check {
  readonly id: string;
  readonly level: 'baseline' | 'restricted';
  /** Checks of the lower level that this one replaces at its level. */
  readonly overrides?: readonly string[];
  readonly run: (spec: Json, metadata: Json) => PodSecurityViolation | undefined;
}

const CHECKS: readonly Check[] = [
  {
    id: 'allowPrivilegeEscalation',
    level: 'restricted',
    run(spec) {
      const bad = containersOf(spec).filter((c) => c.securityContext.allowPrivilegeEscalation !== false).map((c) => c.name);
      if (bad.length === 0) return undefined;
      return {
        reason: 'allowPrivilegeEscalation != false',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must set securityContext.allowPrivilegeEscalation=false`,
      };
    },
  },
  {
    id: 'appArmorProfile',
    level: 'baseline',
    run(spec, metadata) {
      const bad: string[] = [];
      const badType = (profile: unknown): boolean => isRecord(profile) && profile.type === 'Unconfined';
      if (badType(record(spec.securityContext).appArmorProfile)) bad.push('pod');
      for (const c of containersOf(spec)) if (badType(c.securityContext.appArmorProfile)) bad.push(`container ${JSON.stringify(c.name)}`);
      for (const [key, value] of Object.entries(record(metadata.annotations))) {
        if (key.startsWith('container.apparmor.security.beta.kubernetes.io/') && value !== 'runtime/default' && !text(value).startsWith('localhost/')) {
          bad.push(`${key}=${text(value)}`);
        }
      }
      if (bad.length === 0) return undefined;
      return { reason: 'forbidden AppArmor profile', detail: bad.join(', ') };
    },
  },
  {
    id: 'capabilities_baseline',
    level: 'baseline',
    run(spec) {
      const containers: string[] = [];
      const caps = new Set<string>();
      for (const c of containersOf(spec)) {
        const added = record(c.securityContext.capabilities).add;
        const forbidden = (Array.isArray(added) ? added : []).map(String).filter((cap) => !BASELINE_CAPABILITIES.has(cap));
        if (forbidden.length > 0) {
          containers.push(c.name);
          for (const cap of forbidden) caps.add(cap);
        }
      }
      if (containers.length === 0) return undefined;
      return {
        reason: 'non-default capabilities',
        detail: `${pluralize('container', 'containers', containers.length)} ${joinQuote(containers)} must not include ${joinQuote([...caps].sort())} in securityContext.capabilities.add`,
      };
    },
  },
  {
    id: 'capabilities_restricted',
    level: 'restricted',
    overrides: ['capabilities_baseline'],
    run(spec) {
      const missingDrop: string[] = [];
      const adding: string[] = [];
      const caps = new Set<string>();
      for (const c of containersOf(spec)) {
        const capabilities = record(c.securityContext.capabilities);
        const drop = Array.isArray(capabilities.drop) ? capabilities.drop.map(text) : [];
        if (!drop.includes('ALL')) missingDrop.push(c.name);
        const added = Array.isArray(capabilities.add) ? capabilities.add.map(text) : [];
        const forbidden = added.filter((cap) => cap !== 'NET_BIND_SERVICE');
        if (forbidden.length > 0) {
          adding.push(c.name);
          for (const cap of forbidden) caps.add(cap);
        }
      }
      const details: string[] = [];
      if (missingDrop.length > 0) {
        details.push(`${pluralize('container', 'containers', missingDrop.length)} ${joinQuote(missingDrop)} must set securityContext.capabilities.drop=["ALL"]`);
      }
      if (adding.length > 0) {
        details.push(`${pluralize('container', 'containers', adding.length)} ${joinQuote(adding)} must not include ${joinQuote([...caps].sort())} in securityContext.capabilities.add`);
      }
      return details.length === 0 ? undefined : { reason: 'unrestricted capabilities', detail: details.join('; ') };
    },
  },
  {
    id: 'hostNamespaces',
    level: 'baseline',
    run(spec) {
      const bad = (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((field) => spec[field] === true).map((field) => `${field}=true`);
      return bad.length === 0 ? undefined : { reason: 'host namespaces', detail: bad.join(', ') };
    },
  },
  {
    id: 'hostPathVolumes',
    level: 'baseline',
    run(spec) {
      const bad = list(spec.volumes).filter((v) => v.hostPath !== undefined).map((v) => text(v.name ?? ''));
      if (bad.length === 0) return undefined;
      return { reason: 'hostPath volumes', detail: `${pluralize('volume', 'volumes', bad.length)} ${joinQuote(bad)}` };
    },
  },
  {
    id: 'hostPorts',
    level: 'baseline',
    run(spec) {
      const containers: string[] = [];
      const ports: string[] = [];
      for (const c of containersOf(spec)) {
        const used = list(c.raw.ports).map((p) => p.hostPort).filter((port) => typeof port === 'number' && port !== 0);
        if (used.length > 0) {
          containers.push(c.name);
          for (const port of used) ports.push(String(port));
        }
      }
      if (containers.length === 0) return undefined;
      return {
        reason: 'hostPort',
        detail: `${pluralize('container', 'containers', containers.length)} ${joinQuote(containers)} ${pluralize('uses', 'use', containers.length)} ${pluralize('hostPort', 'hostPorts', ports.length)} ${ports.join(', ')}`,
      };
    },
  },
  {
    id: 'privileged',
    level: 'baseline',
    run(spec) {
      const bad = containersOf(spec).filter((c) => c.securityContext.privileged === true).map((c) => c.name);
      if (bad.length === 0) return undefined;
      return { reason: 'privileged', detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must not set securityContext.privileged=true` };
    },
  },
  {
    id: 'procMount',
    level: 'baseline',
    run(spec) {
      const bad = containersOf(spec).filter((c) => c.securityContext.procMount !== undefined && c.securityContext.procMount !== 'Default');
      if (bad.length === 0) return undefined;
      const values = [...new Set(bad.map((c) => text(c.securityContext.procMount)))];
      return {
        reason: 'procMount',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad.map((c) => c.name))} must not set securityContext.procMount to ${joinQuote(values)}`,
      };
    },
  },
  {
    id: 'restrictedVolumes',
    level: 'restricted',
    run(spec) {
      const volumes: string[] = [];
      const types = new Set<string>();
      for (const v of list(spec.volumes)) {
        const type = VOLUME_SOURCE_KEYS.find((key) => v[key] !== undefined && v[key] !== null) ?? 'unknown';
        if (!RESTRICTED_VOLUME_TYPES.has(type)) {
          volumes.push(text(v.name ?? ''));
          types.add(type);
        }
      }
      if (volumes.length === 0) return undefined;
      return {
        reason: 'restricted volume types',
        detail: `${pluralize('volume', 'volumes', volumes.length)} ${joinQuote(volumes)} ${pluralize('uses', 'use', volumes.length)} ${pluralize('restricted volume type', 'restricted volume types', types.size)} ${joinQuote([...types].sort())}`,
      };
    },
  },
  {
    id: 'runAsNonRoot',
    level: 'restricted',
    run(spec) {
      const pod = record(spec.securityContext).runAsNonRoot;
      const setters: string[] = pod === false ? ['pod'] : [];
      const explicit: string[] = [];
      const implicit: string[] = [];
      for (const c of containersOf(spec)) {
        const own = c.securityContext.runAsNonRoot;
        if (own === false) explicit.push(c.name);
        else if (own !== true && pod !== true) implicit.push(c.name);
      }
      if (explicit.length > 0) setters.push(`${pluralize('container', 'containers', explicit.length)} ${joinQuote(explicit)}`);
      const details: string[] = [];
      if (setters.length > 0) details.push(`${setters.join(' and ')} must not set securityContext.runAsNonRoot=false`);
      if (implicit.length > 0) {
        details.push(`pod or ${pluralize('container', 'containers', implicit.length)} ${joinQuote(implicit)} must set securityContext.runAsNonRoot=true`);
      }
      return details.length === 0 ? undefined : { reason: 'runAsNonRoot != true', detail: details.join('; ') };
    },
  },
  {
    id: 'runAsUser',
    level: 'restricted',
    run(spec) {
      const setters: string[] = record(spec.securityContext).runAsUser === 0 ? ['pod'] : [];
      const bad = containersOf(spec).filter((c) => c.securityContext.runAsUser === 0).map((c) => c.name);
      if (bad.length > 0) setters.push(`${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)}`);
      return setters.length === 0 ? undefined : { reason: 'runAsUser=0', detail: `${setters.join(' and ')} must not set runAsUser=0` };
    },
  },
  {
    id: 'seLinuxOptions',
    level: 'baseline',
    run(spec) {
      const setters: string[] = [];
      const problems = new Set<string>();
      const inspect = (options: unknown, who: string): void => {
        if (!isRecord(options)) return;
        let bad = false;
        if (!SELINUX_TYPES.has(text(options.type ?? ''))) {
          problems.add(`type ${JSON.stringify(text(options.type))}`);
          bad = true;
        }
        for (const field of ['user', 'role'] as const) {
          if (options[field] !== undefined && options[field] !== '') {
            problems.add(`${field} ${JSON.stringify(text(options[field]))}`);
            bad = true;
          }
        }
        if (bad) setters.push(who);
      };
      inspect(record(spec.securityContext).seLinuxOptions, 'pod');
      const bad: string[] = [];
      for (const c of containersOf(spec)) {
        const before = setters.length;
        inspect(c.securityContext.seLinuxOptions, c.name);
        if (setters.length > before) bad.push(setters.pop() ?? c.name);
      }
      if (bad.length > 0) setters.push(`${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)}`);
      if (setters.length === 0) return undefined;
      return { reason: 'seLinuxOptions', detail: `${setters.join(' and ')} set forbidden securityContext.seLinuxOptions: ${[...problems].join('; ')}` };
    },
  },
  {
    id: 'seccompProfile_baseline',
    level: 'baseline',
    run(spec) {
      const setters: string[] = record(record(spec.securityContext).seccompProfile).type === 'Unconfined' ? ['pod'] : [];
      const bad = containersOf(spec).filter((c) => record(c.securityContext.seccompProfile).type === 'Unconfined').map((c) => c.name);
      if (bad.length > 0) setters.push(`${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)}`);
      if (setters.length === 0) return undefined;
      return { reason: 'seccompProfile', detail: `${setters.join(' and ')} must not set securityContext.seccompProfile.type to "Unconfined"` };
    },
  },
  {
    id: 'seccompProfile_restricted',
    level: 'restricted',
    overrides: ['seccompProfile_baseline'],
    run(spec) {
      const valid = (type: unknown): boolean => type === 'RuntimeDefault' || type === 'Localhost';
      const podType = record(record(spec.securityContext).seccompProfile).type;
      const details: string[] = [];
      if (podType !== undefined && !valid(podType)) details.push(`pod must not set securityContext.seccompProfile.type to ${JSON.stringify(text(podType))}`);
      const explicit: string[] = [];
      const badValues = new Set<string>();
      const implicit: string[] = [];
      for (const c of containersOf(spec)) {
        const own = record(c.securityContext.seccompProfile).type;
        if (own !== undefined) {
          if (!valid(own)) {
            explicit.push(c.name);
            badValues.add(text(own));
          }
        } else if (!valid(podType)) {
          implicit.push(c.name);
        }
      }
      if (explicit.length > 0) {
        details.push(`${pluralize('container', 'containers', explicit.length)} ${joinQuote(explicit)} must not set securityContext.seccompProfile.type to ${joinQuote([...badValues])}`);
      }
      if (implicit.length > 0) {
        details.push(`pod or ${pluralize('container', 'containers', implicit.length)} ${joinQuote(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`);
      }
      return details.length === 0 ? undefined : { reason: 'seccompProfile', detail: details.join('; ') };
    },
  },
  {
    id: 'sysctls',
    level: 'baseline',
    run(spec) {
      const bad = list(record(spec.securityContext).sysctls).map((s) => text(s.name ?? '')).filter((name) => !SAFE_SYSCTLS.has(name));
      return bad.length === 0 ? undefined : { reason: 'forbidden sysctls', detail: bad.join(', ') };
    },
  },
];

/**
 * Evaluates a pod (a `v1.Pod` as JSON) against a Pod Security Standards level: `privileged`
 * allows everything, `baseline` runs the baseline checks, `restricted` the baseline and restricted
 * ones (the restricted capabilities and seccomp checks replace the baseline ones they tighten, as
 * pod-security-admission does; `hostPath volumes` and `restricted volume types` are both reported).
 * @returns the failed checks in the admission controller's order; empty when the pod is allowed.
 */
export function checkPodSecurity(pod: unknown, level: PodSecurityLevel): PodSecurityViolation[] {
  if (level === 'privileged') return [];
  const spec = record(record(pod).spec);
  const metadata = record(record(pod).metadata);
  // Baseline checks first, then restricted ones, each in id order, as the admission's registry lists them.
  const active = [
    ...CHECKS.filter((check) => check.level === 'baseline'),
    ...(level === 'restricted' ? CHECKS.filter((check) => check.level === 'restricted') : []),
  ];
  const replaced = new Set(active.flatMap((check) => check.overrides ?? []));
  const violations: PodSecurityViolation[] = [];
  for (const check of active) {
    if (replaced.has(check.id)) continue;
    const violation = check.run(spec, metadata);
    if (violation !== undefined) violations.push(violation);
  }
  return violations;
}

/**
 * The reason a real API server gives when Pod Security admission rejects a pod, after
 * `pods "<name>" is forbidden: `: `violates PodSecurity "restricted:latest": r1 (d1), r2 (d2)`.
 * @param version the policy version the namespace enforces (`pod-security.kubernetes.io/enforce-version`), default `latest`.
 */
export function podSecurityMessage(level: PodSecurityLevel, violations: readonly PodSecurityViolation[], version = 'latest'): string {
  return `violates PodSecurity "${level}:${version}": ${violations.map((v) => `${v.reason} (${v.detail})`).join(', ')}`;
}
