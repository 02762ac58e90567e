/**
 * A kubelet for the fake Kubernetes API server that runs each created pod's container as a real
 * Warren bubblewrap sandbox (`@warren/sandbox`), so a pod driver can run agents end to end on one
 * host. What a pod becomes:
 * - the first container's `command` + `args` (an absolute path, or a name looked up in the image's
 *   `bin/`), as `runAsUser`/`runAsGroup` (container, else pod security context), in `workingDir`,
 *   with the container's literal `env` values;
 * - the image: a host directory standing for it (`images[image]`), bound read-only at
 *   `imageMountPath`; the host's `/usr`, `/bin`, `/lib*` are there as in every sandbox;
 * - a PersistentVolumeClaim volume: the host directory `<stateDir>/volumes/<namespace>/<claim>`
 *   (made once, owned by the pod's uid and `fsGroup`, kept across pods as a bound PV is); the first
 *   one mounted is the sandbox's home, further ones are bound read-write;
 * - an `emptyDir` at `/tmp`: the sandbox's tmpfs, `sizeLimit` its size;
 * - a Secret volume mounted inside a PVC mount (with `subPath`, as Warren's `~/.warren/nats.json`):
 *   its keys written into the volume's directory before the start, owned by root and the pod's
 *   `fsGroup`, mode `defaultMode | 0040` (kubelet's group read for `fsGroup`);
 * - `resources.limits.memory` → the memory cgroup limit (its OOM kill reported as `OOMKilled`), the
 *   `warren.dev/pids-max` annotation → the pids limit (default 512);
 * - the host's network (`network: 'host'`: a pod has a network; the agent reaches loopback servers).
 *
 * The pod goes `Running` once the sandbox started; the sandbox's real exit becomes `finishPod`
 * (exit code; a signal becomes 128 + its number) or `oomKillPod`. A graceful delete stops the
 * sandbox (SIGTERM, SIGKILL after the grace period, at most `maxGraceMs`) before the pod goes.
 * Needs root (bubblewrap as Warren runs it). Not done: init containers, probes, restarts,
 * ConfigMap volumes, `exec`.
 */
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { silentLogger, type Logger } from '@warren/core';
import { spawnSandbox, type BindMount, type Sandbox, type SandboxExit, type SandboxSpec } from '@warren/sandbox';
import type { FakeKubeApi, FakePodHook, KubeObject } from './types.js';

/** Options of {@link startSandboxKubelet}. */
export interface SandboxKubeletOptions {
  /** Host directory for volumes, generated files and logs (made if missing). */
  readonly stateDir: string;
  /** Host directories standing for images, by image reference (`warren/agent:dev` → a directory). */
  readonly images: Readonly<Record<string, string>>;
  /** Where the image's directory appears inside the sandbox. Default `/opt/image`. */
  readonly imageMountPath?: string;
  /** Longest grace a graceful delete waits for the process before SIGKILL, in ms. Default 10000. */
  readonly maxGraceMs?: number;
  /** Receives the sandboxes' debug lines and what could not be reported. Default silent. */
  readonly logger?: Logger;
}

/** A running {@link startSandboxKubelet}: its hooks go into `startFakeKubeApi`. */
export interface SandboxKubelet {
  /** Starts a created pod's sandbox. */
  readonly onPodCreated: FakePodHook;
  /** Stops a deleted pod's sandbox. */
  readonly onPodDeleting: FakePodHook;
  /** The host directory of a PVC's volume (whether or not a pod used it yet). */
  volumePath(namespace: string, claim: string): string;
  /** The sandbox of a pod while it runs. */
  sandbox(namespace: string, pod: string): Sandbox | undefined;
  /** Kills every sandbox still running (no grace) and waits for them. Idempotent. */
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

const record = (value: unknown): Json => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {});
const list = (value: unknown): Json[] => (Array.isArray(value) ? value.map(record) : []);

/** Parses a Kubernetes quantity (`64Mi`, `1G`, `500m`, `1024`) into units. @throws {Error} for another text. */
function quantity(text: string, what: string): number {
  const match = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text.trim());
  if (match === null) throw new Error(`fake kubelet: ${what} ${JSON.stringify(text)} is not a Kubernetes quantity`);
  const factors: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Math.floor(Number(match[1]) * (match[2] === undefined ? 1 : (factors[match[2]] ?? 1)));
}

/** Whether `path` is `dir` or below it. */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/+$/, '')}/`);
}

interface Running {
  started: Promise<Sandbox | undefined>;
  deleting: boolean;
}

/** The exit code Kubernetes reports for a sandbox's exit. */
function exitCodeOf(exit: SandboxExit): { exitCode: number; message?: string } {
  switch (exit.kind) {
    case 'succeeded':
      return { exitCode: 0 };
    case 'failed':
      return { exitCode: exit.exitCode };
    case 'signaled': {
      const number = (osConstants.signals as Record<string, number | undefined>)[exit.signal] ?? 9;
      return { exitCode: 128 + number };
    }
    case 'pids':
      return { exitCode: 1, message: 'the pids limit refused a fork' };
    case 'timeout':
    case 'watchdog':
      return { exitCode: 137, message: exit.detail };
    case 'setup_error':
      return { exitCode: 128, message: exit.message };
    default:
      return { exitCode: 1 };
  }
}

/**
 * Starts a kubelet that runs pods as bubblewrap sandboxes (see the module docs); pass its
 * `onPodCreated`/`onPodDeleting` to `startFakeKubeApi`. A pod it cannot start (unknown image,
 * no uid, invalid spec) stays `Pending` with a waiting container (`ErrImagePull` or
 * `CreateContainerConfigError` and the reason), as a real kubelet leaves it.
 */
export async function startSandboxKubelet(options: SandboxKubeletOptions): Promise<SandboxKubelet> {
  const log = options.logger ?? silentLogger;
  const imageMountPath = options.imageMountPath ?? '/opt/image';
  const maxGraceMs = options.maxGraceMs ?? 10_000;
  const tag = randomBytes(3).toString('hex');
  await mkdir(options.stateDir, { recursive: true, mode: 0o755 });
  const running = new Map<string, Running>();
  const sandboxes = new Map<string, Sandbox>();
  let closing: Promise<void> | undefined;
  let serial = 0;

  const volumePath = (namespace: string, claim: string): string => join(options.stateDir, 'volumes', namespace, claim);

  /** Makes a PVC's directory on first use, owned by the pod's uid and fsGroup (mode 0770). */
  const ensureVolume = async (path: string, uid: number, gid: number): Promise<void> => {
    try {
      await stat(path);
      return;
    } catch {
      // first use
    }
    await mkdir(join(path, '..'), { recursive: true, mode: 0o755 });
    await mkdir(path, { mode: 0o770 });
    await chown(path, uid, gid);
    await chmod(path, 0o770);
  };

  const waiting = (api: FakeKubeApi, pod: KubeObject, reason: string, message: string): void => {
    const container = list(record(pod.spec).containers)[0] ?? {};
    api.setPodPhase(pod.metadata?.namespace ?? 'default', pod.metadata?.name ?? '', {
      phase: 'Pending',
      containerStatuses: [
        { name: String(container.name), image: String(container.image), imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message } } },
      ],
    });
  };

  /** The sandbox spec of `pod`, after writing its secret files. @throws {Error} with a reason for what a kubelet would refuse. */
  const specOf = async (pod: KubeObject, api: FakeKubeApi): Promise<SandboxSpec> => {
    const namespace = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const spec = record(pod.spec);
    const container = list(spec.containers)[0];
    if (container === undefined) throw new Error('the pod has no container');
    const podSecurity = record(spec.securityContext);
    const security = record(container.securityContext);
    const uid = Number(security.runAsUser ?? podSecurity.runAsUser);
    const gid = Number(security.runAsGroup ?? podSecurity.runAsGroup ?? uid);
    const fsGroup = Number(podSecurity.fsGroup ?? gid);
    if (!Number.isInteger(uid) || uid <= 0) throw new Error('runAsUser must name a non-root uid (the fake kubelet runs nothing as root)');
    const imageDir = options.images[String(container.image)];
    if (imageDir === undefined) throw Object.assign(new Error(`image ${JSON.stringify(container.image)} is not one of the kubelet's images`), { pull: true });

    const volumes = new Map(list(spec.volumes).map((v) => [String(v.name), v]));
    let home: { host: string; path: string } | undefined;
    const binds: BindMount[] = [];
    const pvcMounts: { host: string; path: string }[] = [];
    let tmpfsBytes = 64 * 1024 * 1024;
    const secretMounts: { volume: Json; mount: Json }[] = [];
    for (const mount of list(container.volumeMounts)) {
      const volume = volumes.get(String(mount.name));
      const mountPath = String(mount.mountPath);
      if (volume === undefined) throw new Error(`volumeMount ${String(mount.name)} names no volume`);
      const claim = record(volume.persistentVolumeClaim).claimName;
      if (typeof claim === 'string') {
        const host = volumePath(namespace, claim);
        await ensureVolume(host, uid, fsGroup);
        if (home === undefined) home = { host, path: mountPath };
        else binds.push({ source: host, target: mountPath });
        pvcMounts.push({ host, path: mountPath });
      } else if (volume.emptyDir !== undefined && mountPath === '/tmp') {
        const size = record(volume.emptyDir).sizeLimit;
        if (typeof size === 'string') tmpfsBytes = quantity(size, 'emptyDir sizeLimit');
      } else if (volume.secret !== undefined) {
        secretMounts.push({ volume, mount });
      } else {
        throw new Error(`volume ${String(mount.name)} at ${mountPath} is of a kind the fake kubelet does not mount`);
      }
    }
    if (home === undefined) throw new Error('the fake kubelet needs a PVC mount for the sandbox home');

    for (const { volume, mount } of secretMounts) {
      const source = record(volume.secret);
      const secret = api.getObject('secrets', namespace, String(source.secretName));
      if (secret === undefined) throw new Error(`secret "${String(source.secretName)}" not found`);
      const data = record(secret.data);
      const mountPath = String(mount.mountPath);
      const owner = pvcMounts.find((m) => within(mountPath, m.path));
      if (owner === undefined) throw new Error(`secret volume at ${mountPath}: the fake kubelet mounts secrets only inside a PVC mount`);
      const defaultMode = typeof source.defaultMode === 'number' ? source.defaultMode : 0o644;
      const items = Array.isArray(source.items)
        ? list(source.items).map((i) => ({ key: String(i.key), path: String(i.path), mode: typeof i.mode === 'number' ? i.mode : defaultMode }))
        : Object.keys(data).map((key) => ({ key, path: key, mode: defaultMode }));
      const subPath = typeof mount.subPath === 'string' ? mount.subPath : undefined;
      for (const item of items) {
        if (subPath !== undefined && item.path !== subPath) continue;
        const value = data[item.key];
        if (typeof value !== 'string') throw new Error(`secret "${String(source.secretName)}" has no key ${item.key}`);
        const inside = subPath === undefined ? join(mountPath, item.path) : mountPath;
        const rel = relative(owner.path, inside);
        if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`secret file ${inside} leaves its volume`);
        const target = join(owner.host, rel);
        const dir = join(target, '..');
        // The parent directories belong to the pod's user, as the agent made them.
        const parts = relative(owner.host, dir).split('/').filter((p) => p !== '');
        for (let i = 1; i <= parts.length; i++) {
          const path = join(owner.host, ...parts.slice(0, i));
          await mkdir(path, { recursive: true, mode: 0o700 });
          await chown(path, uid, fsGroup);
        }
        await writeFile(target, Buffer.from(value, 'base64'), { mode: 0o600 });
        await chown(target, 0, fsGroup);
        await chmod(target, item.mode | 0o040);
      }
    }

    let argv = [...(Array.isArray(container.command) ? container.command.map(String) : []), ...(Array.isArray(container.args) ? container.args.map(String) : [])];
    if (argv.length === 0) throw new Error('the container has no command (the fake kubelet knows no image entrypoints)');
    if (!isAbsolute(argv[0] ?? '')) argv = [join(imageMountPath, 'bin', argv[0] ?? ''), ...argv.slice(1)];
    const env: Record<string, string> = { PATH: `${imageMountPath}/bin:/usr/local/bin:/usr/bin:/bin` };
    for (const variable of list(container.env)) {
      if (typeof variable.value === 'string') env[String(variable.name)] = variable.value;
    }
    const limits = record(record(container.resources).limits);
    const memory = typeof limits.memory === 'string' ? quantity(limits.memory, 'limits.memory') : 512 * 1024 * 1024;
    const pidsText = pod.metadata?.annotations?.['warren.dev/pids-max'];
    const runDir = join(options.stateDir, 'run', `${namespace}_${name}`);
    serial += 1;
    return {
      name: `kl${tag}-${serial}-${name}`.slice(0, 63).replace(/-+$/, ''),
      uid,
      gid,
      homeHostPath: home.host,
      homePath: home.path,
      passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\npod:x:${uid}:${gid}:pod ${name}:${home.path}:/bin/sh\n`,
      group: `root:x:0:\npod:x:${gid}:\n${fsGroup === gid ? '' : `fsgroup:x:${fsGroup}:pod\n`}`,
      argv,
      ...(typeof container.workingDir === 'string' ? { cwd: container.workingDir } : {}),
      env,
      readOnlyBinds: [{ source: imageDir, target: imageMountPath }],
      binds,
      limits: {
        memoryMaxBytes: memory,
        pidsMax: pidsText === undefined ? 512 : Number(pidsText),
        cpuWeight: 100,
        nofile: 4096,
        fsizeBytes: 1024 ** 3,
        tmpfsBytes,
      },
      runDir,
      logPath: join(options.stateDir, 'logs', `${namespace}_${name}.log`),
      logMaxBytes: 4 * 1024 * 1024,
      network: 'host',
    };
  };

  const report = (api: FakeKubeApi, namespace: string, name: string, exit: SandboxExit, logPath: string): Promise<void> =>
    (async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      if (api.getObject('pods', namespace, name) === undefined) return;
      api.setPodLog(namespace, name, text);
      if (exit.kind === 'oom') api.oomKillPod(namespace, name);
      else api.finishPod(namespace, name, exitCodeOf(exit));
    })().catch((error: unknown) => log.warn({ err: error, pod: `${namespace}/${name}` }, 'fake kubelet: cannot report a pod\'s end'));

  const onPodCreated: FakePodHook = async (pod, api) => {
    if (closing) return;
    const namespace = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const key = `${namespace}/${name}`;
    const entry: Running = { deleting: false, started: Promise.resolve(undefined) };
    entry.started = (async () => {
        let spec: SandboxSpec;
        try {
          spec = await specOf(pod, api);
        } catch (error) {
          const pull = (error as { pull?: boolean }).pull === true;
          waiting(api, pod, pull ? 'ErrImagePull' : 'CreateContainerConfigError', (error as Error).message);
          return undefined;
        }
        let sandbox: Sandbox;
        try {
          sandbox = await spawnSandbox(spec, { logger: log });
        } catch (error) {
          waiting(api, pod, 'RunContainerError', (error as Error).message);
          return undefined;
        }
        sandboxes.set(key, sandbox);
        if (!entry.deleting && api.getObject('pods', namespace, name) !== undefined) api.runPod(namespace, name);
        // exited never rejects; report() logs what it cannot do.
        sandbox.exited
          .then(async (exit) => {
            sandboxes.delete(key);
            if (!entry.deleting) await report(api, namespace, name, exit, spec.logPath);
            if (running.get(key) === entry) running.delete(key);
          })
          .catch(() => undefined);
        return sandbox;
      })();
    running.set(key, entry);
    await entry.started;
  };

  const onPodDeleting: FakePodHook = async (pod) => {
    const key = `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`;
    const entry = running.get(key);
    if (entry === undefined) return;
    entry.deleting = true;
    const sandbox = await entry.started;
    const graceSeconds = pod.metadata?.deletionGracePeriodSeconds;
    const graceMs = Math.min(maxGraceMs, typeof graceSeconds === 'number' ? graceSeconds * 1000 : 30_000);
    if (sandbox) await sandbox.stop(graceMs);
    if (sandboxes.get(key) === sandbox) sandboxes.delete(key);
    if (running.get(key) === entry) running.delete(key);
  };

  return {
    onPodCreated,
    onPodDeleting,
    volumePath,
    sandbox: (namespace, pod) => sandboxes.get(`${namespace}/${pod}`),
    close: () => {
      closing ??= (async () => {
        for (const entry of running.values()) entry.deleting = true;
        const all = await Promise.all([...running.values()].map((e) => e.started));
        await Promise.all(all.map((s) => (s === undefined ? Promise.resolve() : s.stop(0))));
        running.clear();
      })();
      return closing;
    },
  };
}
