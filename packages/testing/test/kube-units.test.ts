import { describe, expect, it } from 'vitest';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError } from '../src/kube/patch.js';
import { checkPodSecurity, podSecurityMessage } from '../src/kube/pod-security.js';
import { parseFieldSelector, parseLabelSelector, SelectorSyntaxError } from '../src/kube/selectors.js';

describe('label selectors', () => {
  const labels = { app: 'warren', tier: 'agents', 'warren.dev/agent': 'a' };
  it.each([
    ['', true],
    ['app=warren', true],
    ['app==warren', true],
    ['app!=warren', false],
    ['app=warren,tier=agents', true],
    ['app=warren,tier=other', false],
    ['tier in (agents, gateway)', true],
    ['tier notin (agents)', false],
    ['missing notin (x)', true],
    ['missing!=x', true],
    ['warren.dev/agent', true],
    ['!warren.dev/agent', false],
    ['!missing', true],
    ['app in (warren),!missing,tier', true],
  ])('%j matches %s', (selector, expected) => {
    expect(parseLabelSelector(selector)(labels)).toBe(expected);
  });

  it('rejects selectors that do not parse, naming the part', () => {
    expect(() => parseLabelSelector('app in (a')).toThrow(SelectorSyntaxError);
    expect(() => parseLabelSelector('app=a b')).toThrow(/unable to parse requirement/);
    expect(() => parseLabelSelector('-bad=x')).toThrow(/invalid label key "-bad"/);
  });
});

describe('field selectors', () => {
  it('selects on supported fields and rejects others', () => {
    const match = parseFieldSelector('metadata.name=a,status.phase!=Failed', ['metadata.name', 'status.phase']);
    expect(match({ metadata: { name: 'a' }, status: { phase: 'Running' } })).toBe(true);
    expect(match({ metadata: { name: 'a' }, status: { phase: 'Failed' } })).toBe(false);
    expect(match({ metadata: { name: 'b' } })).toBe(false);
    expect(() => parseFieldSelector('spec.x=1', ['metadata.name'])).toThrow('field label not supported: spec.x');
  });
});

describe('patches', () => {
  // RFC 7386 Appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [['a', 'b'], { a: 'b' }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('merge patch of %j with %j is %j', (target, patch, expected) => {
    expect(applyMergePatch(target, patch)).toEqual(expected);
  });

  // RFC 6902 Appendix A.
  it('applies JSON Patch operations in order without changing the target', () => {
    const target = { foo: ['bar', 'baz'], 'a/b': 1, obj: { x: 1 } };
    const result = applyJsonPatch(target, [
      { op: 'add', path: '/foo/1', value: 'qux' },
      { op: 'add', path: '/foo/-', value: 'end' },
      { op: 'remove', path: '/a~1b' },
      { op: 'replace', path: '/obj/x', value: 2 },
      { op: 'copy', from: '/obj', path: '/copy' },
      { op: 'move', from: '/foo/0', path: '/first' },
      { op: 'test', path: '/copy', value: { x: 2 } },
    ]);
    expect(result).toEqual({ foo: ['qux', 'baz', 'end'], obj: { x: 2 }, copy: { x: 2 }, first: 'bar' });
    expect(target).toEqual({ foo: ['bar', 'baz'], 'a/b': 1, obj: { x: 1 } });
  });

  it.each([
    [[{ op: 'test', path: '/a', value: 2 }], /test failed/],
    [[{ op: 'replace', path: '/missing', value: 1 }], /doc is missing key/],
    [[{ op: 'remove', path: '/b/c' }], /doc is missing path/],
    [[{ op: 'add', path: '/list/5', value: 1 }], /out of bounds/],
    [[{ op: 'jump', path: '/a' }], /Unexpected kind: jump/],
    [{ op: 'add' }, /must be an array/],
  ])('rejects %j', (operations, message) => {
    expect(() => applyJsonPatch({ a: 1, list: [] }, operations)).toThrow(PatchError);
    expect(() => applyJsonPatch({ a: 1, list: [] }, operations)).toThrow(message);
  });
});

describe('strategic merge patches', () => {
  const pod = () => ({
    metadata: { labels: { app: 'warren' }, finalizers: ['a'] },
    spec: {
      containers: [
        { name: 'runner', image: 'r:1', args: ['--x'], env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
        { name: 'sidecar', image: 's:1' },
      ],
      volumes: [{ name: 'home', emptyDir: {} }],
    },
  });

  it('merges keyed lists element by element and replaces other lists', () => {
    const patched = applyStrategicMergePatch(pod(), {
      metadata: { labels: { app: null, tier: 'agents' }, finalizers: ['b', 'a'] },
      spec: { containers: [{ name: 'runner', image: 'r:2', args: ['--y'], env: [{ name: 'B', value: '3' }, { name: 'C', value: '4' }] }] },
    });
    expect(patched).toEqual({
      metadata: { labels: { tier: 'agents' }, finalizers: ['a', 'b'] },
      spec: {
        containers: [
          { name: 'runner', image: 'r:2', args: ['--y'], env: [{ name: 'A', value: '1' }, { name: 'B', value: '3' }, { name: 'C', value: '4' }] },
          { name: 'sidecar', image: 's:1' },
        ],
        volumes: [{ name: 'home', emptyDir: {} }],
      },
    });
  });

  it('follows $patch directives on list elements, lists and maps', () => {
    expect(applyStrategicMergePatch(pod(), { spec: { containers: [{ name: 'sidecar', $patch: 'delete' }] } })).toMatchObject({
      spec: { containers: [{ name: 'runner' }] },
    });
    expect(applyStrategicMergePatch(pod(), { spec: { volumes: [{ name: 'tmp', emptyDir: {} }, { $patch: 'replace' }] } })).toMatchObject({
      spec: { volumes: [{ name: 'tmp', emptyDir: {} }] },
    });
    expect(applyStrategicMergePatch(pod(), { metadata: { labels: { $patch: 'replace', only: 'this' } } })).toMatchObject({ metadata: { labels: { only: 'this' } } });
    expect(applyStrategicMergePatch(pod(), { metadata: { labels: { $patch: 'delete' } } })).toEqual({ ...pod(), metadata: { finalizers: ['a'] } });
    expect(() => applyStrategicMergePatch(pod(), { spec: { containers: [{ image: 'no-name' }] } })).toThrow('does not contain declared merge key: name');
  });
});

describe('Pod Security Standards checks', () => {
  const restricted = () => ({
    metadata: { name: 'p' },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1001, seccompProfile: { type: 'RuntimeDefault' } },
      volumes: [{ name: 'home', persistentVolumeClaim: { claimName: 'home' } }, { name: 'tmp', emptyDir: {} }],
      containers: [{ name: 'runner', image: 'r:1', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } } }],
    },
  });

  it('admits a restricted pod at every level', () => {
    for (const level of ['privileged', 'baseline', 'restricted'] as const) expect(checkPodSecurity(restricted(), level)).toEqual([]);
  });

  it.each([
    ['hostPath volume', (p: ReturnType<typeof restricted>) => p.spec.volumes.push({ name: 'host', hostPath: { path: '/' } } as never), [
      'hostPath volumes (volume "host")',
      'restricted volume types (volume "host" uses restricted volume type "hostPath")',
    ]],
    ['runAsUser 0 on the pod', (p: ReturnType<typeof restricted>) => (p.spec.securityContext.runAsUser = 0), ['runAsUser=0 (pod must not set runAsUser=0)']],
    ['runAsNonRoot false on a container', (p: ReturnType<typeof restricted>) => Object.assign(p.spec.containers[0]!.securityContext, { runAsNonRoot: false }), [
      'runAsNonRoot != true (container "runner" must not set securityContext.runAsNonRoot=false)',
    ]],
    ['an added capability', (p: ReturnType<typeof restricted>) => p.spec.containers[0]!.securityContext.capabilities.add.push('SYS_ADMIN'), [
      'unrestricted capabilities (container "runner" must not include "SYS_ADMIN" in securityContext.capabilities.add)',
    ]],
    ['an Unconfined seccomp profile', (p: ReturnType<typeof restricted>) => (p.spec.securityContext.seccompProfile.type = 'Unconfined'), [
      'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined"; pod or container "runner" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    ]],
    ['two containers missing drop ALL', (p: ReturnType<typeof restricted>) =>
      p.spec.containers.push(
        { name: 'b', image: 'b:1', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: [], add: [] } } },
        { name: 'c', image: 'c:1', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['NET_RAW'], add: [] } } },
      ), ['unrestricted capabilities (containers "b", "c" must set securityContext.capabilities.drop=["ALL"])']],
  ])('finds %s', (_what, change, expected) => {
    const pod = restricted();
    change(pod);
    expect(checkPodSecurity(pod, 'restricted').map((v) => `${v.reason} (${v.detail})`)).toEqual(expected);
  });

  it('holds baseline to the baseline checks only', () => {
    const pod = {
      spec: {
        hostPID: true,
        containers: [{ name: 'a', image: 'a:1', ports: [{ containerPort: 80, hostPort: 8080 }], securityContext: { capabilities: { add: ['NET_ADMIN'] } } }],
        securityContext: { sysctls: [{ name: 'kernel.msgmax', value: '1' }] },
      },
    };
    const violations = checkPodSecurity(pod, 'baseline');
    expect(violations.map((v) => v.reason)).toEqual(['non-default capabilities', 'host namespaces', 'hostPort', 'forbidden sysctls']);
    expect(podSecurityMessage('baseline', violations)).toBe(
      'violates PodSecurity "baseline:latest": non-default capabilities (container "a" must not include "NET_ADMIN" in securityContext.capabilities.add), ' +
        'host namespaces (hostPID=true), hostPort (container "a" uses hostPort 8080), forbidden sysctls (kernel.msgmax)',
    );
    expect(checkPodSecurity(pod, 'privileged')).toEqual([]);
  });
});
