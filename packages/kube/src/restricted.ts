import { formatFieldPath } from './field-path.js';
import type { FieldPathSegment } from './field-path.js';

/**
 * The controls of the Pod Security Standards, named by the check IDs of the Pod Security admission
 * controller (`k8s.io/pod-security-admission/policy`, `check_*.go`). Baseline controls come first;
 * the restricted profile includes them all.
 * Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (as of Kubernetes 1.34).
 */
export const PodSecurityRule = {
  /** Baseline "HostProcess": no Windows HostProcess containers. */
  WindowsHostProcess: 'windowsHostProcess',
  /** Baseline "Host Namespaces": no `hostNetwork`, `hostPID`, `hostIPC`. */
  HostNamespaces: 'hostNamespaces',
  /** Baseline "Privileged Containers": no `privileged: true`. */
  Privileged: 'privileged',
  /** Baseline "Capabilities": `capabilities.add` only from the default set. */
  CapabilitiesBaseline: 'capabilities_baseline',
  /** Baseline "HostPath Volumes": no `hostPath` volumes. */
  HostPathVolumes: 'hostPathVolumes',
  /** Baseline "Host Ports": no `hostPort` other than 0. */
  HostPorts: 'hostPorts',
  /**
   * Baseline "Host Probes / Lifecycle Hooks" (Kubernetes 1.34+): no `host` in probes' and lifecycle
   * hooks' `httpGet` and `tcpSocket` (named after the documentation's row).
   */
  HostProbesAndLifecycleHooks: 'hostProbesAndLifecycleHooks',
  /** Baseline "AppArmor": no profile other than `RuntimeDefault` or `Localhost` (fields and annotations). */
  AppArmorProfile: 'appArmorProfile',
  /** Baseline "SELinux": only the container SELinux types, no custom user or role. */
  SeLinuxOptions: 'seLinuxOptions',
  /** Baseline "/proc Mount Type": `procMount` only `Default`. */
  ProcMount: 'procMount',
  /** Baseline "Seccomp": no `Unconfined` profile. */
  SeccompProfileBaseline: 'seccompProfile_baseline',
  /** Baseline "Sysctls": only the safe sysctls. */
  Sysctls: 'sysctls',
  /** Restricted "Volume Types": only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret. */
  RestrictedVolumes: 'restrictedVolumes',
  /** Restricted "Privilege Escalation": `allowPrivilegeEscalation: false` on every container. */
  AllowPrivilegeEscalation: 'allowPrivilegeEscalation',
  /** Restricted "Running as Non-root": `runAsNonRoot: true` on the pod or on every container. */
  RunAsNonRoot: 'runAsNonRoot',
  /** Restricted "Running as Non-root user": no `runAsUser: 0`. */
  RunAsUser: 'runAsUser',
  /** Restricted "Seccomp": `RuntimeDefault` or `Localhost`, set on the pod or on every container. */
  SeccompProfileRestricted: 'seccompProfile_restricted',
  /** Restricted "Capabilities": drop `ALL`, add only `NET_BIND_SERVICE`. */
  CapabilitiesRestricted: 'capabilities_restricted',
} as const;
/** One of `PodSecurityRule`'s values. */
export type PodSecurityRule = (typeof PodSecurityRule)[keyof typeof PodSecurityRule];

/** A Pod Security Standards profile level. */
export type PodSecurityLevel = 'baseline' | 'restricted';

/**
 * One field of a pod that breaks a control: `path` is its field path
 * (`spec.containers[0].securityContext.privileged`), `rule` the control's check ID, `level` the
 * profile that defines it, `message` what is wrong and what is allowed.
 */
export interface PodSecurityViolation {
  readonly rule: PodSecurityRule;
  readonly level: PodSecurityLevel;
  readonly path: string;
  readonly message: string;
}

/** Capabilities the baseline profile lets a container add. */
const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);

/** SELinux types the baseline profile allows. */
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

/** Sysctls the baseline profile allows (the "safe" set as of Kubernetes 1.32). */
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);

/** Volume sources the restricted profile allows. */
const RESTRICTED_VOLUME_SOURCES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

const APPARMOR_ANNOTATION_PREFIX = 'container.apparmor.security.beta.kubernetes.io/';

type Json = Record<string, unknown>;

function obj(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** A container of any of the three lists, with the segments of its path. */
interface ContainerAt {
  readonly path: FieldPathSegment[];
  readonly container: Json;
  readonly securityContext: Json | undefined;
}

/**
 * Checks a pod against the Pod Security Standards "restricted" profile, which includes "baseline":
 * every control of both, for the pod, its containers, init containers and ephemeral containers, as
 * the documentation's tables define them (latest version). A pod with `spec.os.name: windows` is
 * exempt from the restricted controls the documentation marks as Linux-only (privilege escalation,
 * seccomp, capabilities). The relaxation of the non-root controls for pods in user namespaces
 * (`hostUsers: false`) is not applied: such pods are checked as any other, which is stricter.
 * Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/
 * @param pod a Pod manifest (a parsed object; malformed parts are skipped, not thrown on).
 * @returns every violation, baseline controls first; empty when the pod passes.
 */
export function checkRestricted(pod: unknown): PodSecurityViolation[] {
  const out: PodSecurityViolation[] = [];
  const add = (rule: PodSecurityRule, level: PodSecurityLevel, segments: FieldPathSegment[], message: string, mapKeys?: Set<number>): void => {
    out.push({ rule, level, path: formatFieldPath(segments, mapKeys), message });
  };
  const root = obj(pod) ?? {};
  const metadata = obj(root.metadata) ?? {};
  const spec = obj(root.spec) ?? {};
  const podSc = obj(spec.securityContext);
  const containers: ContainerAt[] = [];
  for (const listName of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    list(spec[listName]).forEach((item, index) => {
      const container = obj(item);
      if (container !== undefined) containers.push({ path: ['spec', listName, index], container, securityContext: obj(container.securityContext) });
    });
  }
  const scPath = (c: ContainerAt, ...rest: FieldPathSegment[]): FieldPathSegment[] => [...c.path, 'securityContext', ...rest];

  // Baseline: HostProcess.
  if (obj(podSc?.windowsOptions)?.hostProcess === true) {
    add(PodSecurityRule.WindowsHostProcess, 'baseline', ['spec', 'securityContext', 'windowsOptions', 'hostProcess'], 'must not be true');
  }
  for (const c of containers) {
    if (obj(c.securityContext?.windowsOptions)?.hostProcess === true) {
      add(PodSecurityRule.WindowsHostProcess, 'baseline', scPath(c, 'windowsOptions', 'hostProcess'), 'must not be true');
    }
  }
  // Baseline: Host Namespaces.
  for (const field of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
    if (spec[field] === true) add(PodSecurityRule.HostNamespaces, 'baseline', ['spec', field], 'must not be true: host namespaces are disallowed');
  }
  // Baseline: Privileged Containers.
  for (const c of containers) {
    if (c.securityContext?.privileged === true) add(PodSecurityRule.Privileged, 'baseline', scPath(c, 'privileged'), 'must not be true');
  }
  // Baseline: Capabilities.
  for (const c of containers) {
    list(obj(c.securityContext?.capabilities)?.add).forEach((capability, index) => {
      if (typeof capability !== 'string' || !BASELINE_CAPABILITIES.has(capability)) {
        add(PodSecurityRule.CapabilitiesBaseline, 'baseline', scPath(c, 'capabilities', 'add', index), `'${String(capability)}' is not a capability the baseline profile allows adding`);
      }
    });
  }
  // Baseline: HostPath Volumes.
  list(spec.volumes).forEach((item, index) => {
    if (isSet(obj(item)?.hostPath)) add(PodSecurityRule.HostPathVolumes, 'baseline', ['spec', 'volumes', index, 'hostPath'], 'must not be set: hostPath volumes are disallowed');
  });
  // Baseline: Host Ports.
  for (const c of containers) {
    list(c.container.ports).forEach((item, index) => {
      const hostPort = obj(item)?.hostPort;
      if (isSet(hostPort) && hostPort !== 0) add(PodSecurityRule.HostPorts, 'baseline', [...c.path, 'ports', index, 'hostPort'], 'must be unset or 0');
    });
  }
  // Baseline: Host Probes / Lifecycle Hooks.
  for (const c of containers) {
    const handlers: [FieldPathSegment[], unknown][] = [];
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) handlers.push([[...c.path, probe], c.container[probe]]);
    for (const hook of ['postStart', 'preStop'] as const) handlers.push([[...c.path, 'lifecycle', hook], obj(c.container.lifecycle)?.[hook]]);
    for (const [at, handler] of handlers) {
      for (const action of ['httpGet', 'tcpSocket'] as const) {
        const host = obj(obj(handler)?.[action])?.host;
        if (isSet(host) && host !== '') add(PodSecurityRule.HostProbesAndLifecycleHooks, 'baseline', [...at, action, 'host'], 'must be unset or empty');
      }
    }
  }
  // Baseline: AppArmor.
  const appArmorAllowed = (type: unknown): boolean => !isSet(type) || type === 'RuntimeDefault' || type === 'Localhost';
  if (!appArmorAllowed(obj(podSc?.appArmorProfile)?.type)) {
    add(PodSecurityRule.AppArmorProfile, 'baseline', ['spec', 'securityContext', 'appArmorProfile', 'type'], 'must be RuntimeDefault or Localhost');
  }
  for (const c of containers) {
    if (!appArmorAllowed(obj(c.securityContext?.appArmorProfile)?.type)) {
      add(PodSecurityRule.AppArmorProfile, 'baseline', scPath(c, 'appArmorProfile', 'type'), 'must be RuntimeDefault or Localhost');
    }
  }
  for (const [key, value] of Object.entries(obj(metadata.annotations) ?? {})) {
    if (key.startsWith(APPARMOR_ANNOTATION_PREFIX) && !(value === 'runtime/default' || (typeof value === 'string' && value.startsWith('localhost/')))) {
      add(PodSecurityRule.AppArmorProfile, 'baseline', ['metadata', 'annotations', key], 'must be runtime/default or localhost/<profile>', new Set([2]));
    }
  }
  // Baseline: SELinux.
  const checkSeLinux = (options: Json | undefined, at: FieldPathSegment[]): void => {
    if (options === undefined) return;
    if (isSet(options.type) && !(typeof options.type === 'string' && SELINUX_TYPES.has(options.type))) {
      add(PodSecurityRule.SeLinuxOptions, 'baseline', [...at, 'type'], 'must be container_t, container_init_t, container_kvm_t or container_engine_t');
    }
    for (const field of ['user', 'role'] as const) {
      if (isSet(options[field]) && options[field] !== '') add(PodSecurityRule.SeLinuxOptions, 'baseline', [...at, field], 'must not be set');
    }
  };
  checkSeLinux(obj(podSc?.seLinuxOptions), ['spec', 'securityContext', 'seLinuxOptions']);
  for (const c of containers) checkSeLinux(obj(c.securityContext?.seLinuxOptions), scPath(c, 'seLinuxOptions'));
  // Baseline: /proc Mount Type.
  for (const c of containers) {
    const procMount = c.securityContext?.procMount;
    if (isSet(procMount) && procMount !== 'Default') add(PodSecurityRule.ProcMount, 'baseline', scPath(c, 'procMount'), 'must be unset or Default');
  }
  // Baseline: Seccomp.
  if (obj(podSc?.seccompProfile)?.type === 'Unconfined') {
    add(PodSecurityRule.SeccompProfileBaseline, 'baseline', ['spec', 'securityContext', 'seccompProfile', 'type'], 'must not be Unconfined');
  }
  for (const c of containers) {
    if (obj(c.securityContext?.seccompProfile)?.type === 'Unconfined') {
      add(PodSecurityRule.SeccompProfileBaseline, 'baseline', scPath(c, 'seccompProfile', 'type'), 'must not be Unconfined');
    }
  }
  // Baseline: Sysctls.
  list(podSc?.sysctls).forEach((item, index) => {
    const name = obj(item)?.name;
    if (!(typeof name === 'string' && SAFE_SYSCTLS.has(name))) {
      add(PodSecurityRule.Sysctls, 'baseline', ['spec', 'securityContext', 'sysctls', index, 'name'], `'${String(name)}' is not a safe sysctl`);
    }
  });

  // Restricted: Volume Types.
  list(spec.volumes).forEach((item, index) => {
    const volume = obj(item) ?? {};
    let allowedSource = false;
    let reported = false;
    for (const [source, value] of Object.entries(volume)) {
      if (source === 'name' || !isSet(value)) continue;
      if (RESTRICTED_VOLUME_SOURCES.has(source)) {
        allowedSource = true;
        continue;
      }
      reported = true;
      add(PodSecurityRule.RestrictedVolumes, 'restricted', ['spec', 'volumes', index, source], `'${source}' volumes are disallowed (allowed: ${[...RESTRICTED_VOLUME_SOURCES].join(', ')})`);
    }
    if (!allowedSource && !reported) {
      add(PodSecurityRule.RestrictedVolumes, 'restricted', ['spec', 'volumes', index], `must set one of ${[...RESTRICTED_VOLUME_SOURCES].join(', ')}`);
    }
  });
  const windows = obj(spec.os)?.name === 'windows';
  // Restricted: Privilege Escalation.
  if (!windows) {
    for (const c of containers) {
      if (c.securityContext?.allowPrivilegeEscalation !== false) add(PodSecurityRule.AllowPrivilegeEscalation, 'restricted', scPath(c, 'allowPrivilegeEscalation'), 'must be false');
    }
  }
  // Restricted: Running as Non-root.
  const podNonRoot = podSc?.runAsNonRoot;
  if (podNonRoot === false) add(PodSecurityRule.RunAsNonRoot, 'restricted', ['spec', 'securityContext', 'runAsNonRoot'], 'must be true');
  for (const c of containers) {
    const own = c.securityContext?.runAsNonRoot;
    if (own === false) add(PodSecurityRule.RunAsNonRoot, 'restricted', scPath(c, 'runAsNonRoot'), 'must be true');
    else if (own !== true && podNonRoot !== true) add(PodSecurityRule.RunAsNonRoot, 'restricted', scPath(c, 'runAsNonRoot'), 'must be true (here or in spec.securityContext)');
  }
  if (containers.length === 0 && podNonRoot !== true) add(PodSecurityRule.RunAsNonRoot, 'restricted', ['spec', 'securityContext', 'runAsNonRoot'], 'must be true');
  // Restricted: Running as Non-root user.
  if (podSc?.runAsUser === 0) add(PodSecurityRule.RunAsUser, 'restricted', ['spec', 'securityContext', 'runAsUser'], 'must not be 0 (root)');
  for (const c of containers) {
    if (c.securityContext?.runAsUser === 0) add(PodSecurityRule.RunAsUser, 'restricted', scPath(c, 'runAsUser'), 'must not be 0 (root)');
  }
  if (!windows) {
    // Restricted: Seccomp.
    const seccompAllowed = (type: unknown): boolean => type === 'RuntimeDefault' || type === 'Localhost';
    const podSeccomp = obj(podSc?.seccompProfile)?.type;
    if (isSet(podSeccomp) && !seccompAllowed(podSeccomp)) {
      add(PodSecurityRule.SeccompProfileRestricted, 'restricted', ['spec', 'securityContext', 'seccompProfile', 'type'], 'must be RuntimeDefault or Localhost');
    }
    for (const c of containers) {
      const own = obj(c.securityContext?.seccompProfile)?.type;
      if (isSet(own)) {
        if (!seccompAllowed(own)) add(PodSecurityRule.SeccompProfileRestricted, 'restricted', scPath(c, 'seccompProfile', 'type'), 'must be RuntimeDefault or Localhost');
      } else if (!seccompAllowed(podSeccomp)) {
        add(PodSecurityRule.SeccompProfileRestricted, 'restricted', scPath(c, 'seccompProfile', 'type'), 'must be RuntimeDefault or Localhost (here or in spec.securityContext)');
      }
    }
    // Restricted: Capabilities.
    for (const c of containers) {
      const capabilities = obj(c.securityContext?.capabilities);
      if (!list(capabilities?.drop).includes('ALL')) add(PodSecurityRule.CapabilitiesRestricted, 'restricted', scPath(c, 'capabilities', 'drop'), "must include 'ALL'");
      list(capabilities?.add).forEach((capability, index) => {
        if (capability !== 'NET_BIND_SERVICE') add(PodSecurityRule.CapabilitiesRestricted, 'restricted', scPath(c, 'capabilities', 'add', index), `'${String(capability)}' may not be added (only NET_BIND_SERVICE)`);
      });
    }
  }
  return out;
}
