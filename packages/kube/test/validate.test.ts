import { describe, expect, it } from 'vitest';
import { ManifestError, agentManifests, assertValidManifest, validateManifest } from '@warren/kube';
import type { ManifestIssue } from '@warren/kube';
import { fullSpec, minimalSpec } from './support.js';

type Json = Record<string, unknown>;

/** A deep copy of the agent's objects as plain JSON, free to mutate in any way. */
function objects(): Record<'serviceAccount' | 'secret' | 'persistentVolumeClaim' | 'networkPolicy' | 'pod', Json> {
  return JSON.parse(JSON.stringify(agentManifests(fullSpec()))) as Record<'serviceAccount' | 'secret' | 'persistentVolumeClaim' | 'networkPolicy' | 'pod', Json>;
}

/** Follows `path` (keys and indexes) from `root` to an object. */
function at(root: Json, ...path: (string | number)[]): Json {
  let node: unknown = root;
  for (const key of path) node = (node as Record<string | number, unknown>)[key];
  return node as Json;
}

const unknownField = (path: string): ManifestIssue => ({ path, rule: 'unknown-field', message: 'is not a field of the schema' });

describe('validateManifest', () => {
  it('finds nothing wrong with the built objects', () => {
    for (const manifest of Object.values(objects())) expect(validateManifest(manifest)).toEqual([]);
  });

  const unknown: [string, 'serviceAccount' | 'secret' | 'persistentVolumeClaim' | 'networkPolicy' | 'pod', (o: Json) => void, string][] = [
    ['at the top of a Pod', 'pod', (o) => void (o.replicas = 2), 'replicas'],
    ['in metadata', 'pod', (o) => void (at(o, 'metadata').label = { a: 'b' }), 'metadata.label'],
    ['in a container', 'pod', (o) => void (at(o, 'spec', 'containers', 0).cmd = ['sh']), 'spec.containers[0].cmd'],
    ['in a container securityContext', 'pod', (o) => void (at(o, 'spec', 'containers', 0, 'securityContext').runAsRoot = false), 'spec.containers[0].securityContext.runAsRoot'],
    ['in a volume mount', 'pod', (o) => void (at(o, 'spec', 'containers', 0, 'volumeMounts', 2).mode = 256), 'spec.containers[0].volumeMounts[2].mode'],
    ['in a volume source', 'pod', (o) => void (at(o, 'spec', 'volumes', 1, 'emptyDir').size = '1Gi'), 'spec.volumes[1].emptyDir.size'],
    ['in the pod securityContext', 'pod', (o) => void (at(o, 'spec', 'securityContext').fsUser = 1), 'spec.securityContext.fsUser'],
    ['in a Secret', 'secret', (o) => void (o.stringdata = {}), 'stringdata'],
    ['in a PVC spec', 'persistentVolumeClaim', (o) => void (at(o, 'spec').size = '1Gi'), 'spec.size'],
    ['in a NetworkPolicy egress peer', 'networkPolicy', (o) => void (at(o, 'spec', 'egress', 1, 'to', 0).cidr = '10.0.0.0/8'), 'spec.egress[1].to[0].cidr'],
    ['in a label selector', 'networkPolicy', (o) => void (at(o, 'spec', 'podSelector').matchLabel = {}), 'spec.podSelector.matchLabel'],
    ['in a ServiceAccount', 'serviceAccount', (o) => void (o.automountToken = false), 'automountToken'],
  ];
  it.each(unknown)('names an unknown field %s with its path', (_title, kind, mutate, path) => {
    const manifest = objects()[kind];
    mutate(manifest);
    expect(validateManifest(manifest)).toEqual([unknownField(path)]);
  });

  it('takes any key in maps: labels, annotations, resource lists, Secret data, selectors', () => {
    const { pod, secret, networkPolicy } = objects();
    at(pod, 'metadata', 'labels')['anything.example.com/x_y'] = 'v';
    at(pod, 'metadata').annotations = { 'a/b': 'c', d: 'e' };
    at(pod, 'spec', 'containers', 0, 'resources', 'limits')['nvidia.com/gpu'] = '1';
    at(pod, 'spec').nodeSelector = { 'kubernetes.io/arch': 'amd64' };
    at(secret, 'data')['other.json'] = 'e30=';
    at(networkPolicy, 'spec', 'podSelector', 'matchLabels').extra = 'x';
    for (const manifest of [pod, secret, networkPolicy]) expect(validateManifest(manifest)).toEqual([]);
  });

  const schema: [string, (o: Json) => void, ManifestIssue[]][] = [
    ['a string uid', (o) => void (at(o, 'spec', 'containers', 0, 'securityContext').runAsUser = '1000'), [{ path: 'spec.containers[0].securityContext.runAsUser', rule: 'schema', message: 'must be integer' }]],
    ['an unknown restart policy', (o) => void (at(o, 'spec').restartPolicy = 'Sometimes'), [{ path: 'spec.restartPolicy', rule: 'schema', message: 'must be equal to one of the allowed values' }]],
    ['a container without a name', (o) => void delete at(o, 'spec', 'containers', 0).name, [{ path: 'spec.containers[0].name', rule: 'schema', message: 'is required' }]],
    ['a number as a label value', (o) => void (at(o, 'metadata', 'labels').team = 7), [{ path: 'metadata.labels[team]', rule: 'schema', message: 'must be string' }]],
    ['a string where a list goes', (o) => void (at(o, 'spec').containers = 'agent'), [{ path: 'spec.containers', rule: 'schema', message: 'must be array' }]],
  ];
  it.each(schema)('reports %s against the schema with its path', (_title, mutate, issues) => {
    const { pod } = objects();
    mutate(pod);
    expect(validateManifest(pod)).toEqual(issues);
  });

  it('reports both a schema error and an unknown field of one manifest', () => {
    const { pod } = objects();
    at(pod, 'spec').hostNetwork = 'yes';
    at(pod, 'spec').hostNet = true;
    expect(validateManifest(pod)).toEqual([{ path: 'spec.hostNetwork', rule: 'schema', message: 'must be boolean' }, unknownField('spec.hostNet')]);
  });

  it.each([
    ['not an object', 'Pod', [{ path: '', rule: 'kind', message: 'must be an object' }]],
    ['a kind it does not know', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }, [{ path: 'kind', rule: 'kind', message: expect.stringContaining('apps/v1/Deployment is not a kind validateManifest knows') as string }]],
    ['a Pod of the wrong apiVersion', { apiVersion: 'v2', kind: 'Pod' }, [{ path: 'kind', rule: 'kind', message: expect.stringContaining('v2/Pod') as string }]],
    ['no kind', { apiVersion: 'v1' }, [{ path: 'apiVersion', rule: 'kind', message: expect.stringContaining('v1/undefined') as string }]],
  ])('reports %s', (_title, manifest, issues) => {
    expect(validateManifest(manifest)).toEqual(issues);
  });

  it('reports a manifest that is not JSON data instead of throwing', () => {
    const pod: Json = { apiVersion: 'v1', kind: 'Pod' };
    pod.self = pod;
    expect(validateManifest(pod)).toEqual([{ path: '', rule: 'kind', message: expect.stringContaining('is not JSON data') as string }]);
  });

  it('leaves the manifest it checks unchanged', () => {
    const { pod } = objects();
    at(pod, 'spec').bogus = 1;
    const before = JSON.stringify(pod);
    validateManifest(pod);
    expect(JSON.stringify(pod)).toBe(before);
  });
});

describe('assertValidManifest', () => {
  it('passes a valid manifest', () => {
    expect(() => assertValidManifest(agentManifests(minimalSpec()).pod)).not.toThrow();
  });

  it('throws a ManifestError naming the object and listing every issue', () => {
    const { pod } = objects();
    at(pod, 'spec').a = 1;
    at(pod, 'spec').b = 2;
    at(pod, 'spec').c = 3;
    at(pod, 'spec').d = 4;
    let caught: unknown;
    try {
      assertValidManifest(pod);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    const error = caught as ManifestError;
    expect(error.code).toBe('WARREN_KUBE_MANIFEST');
    expect(error.manifest).toBe('Pod/warren-reviewer-12');
    expect(error.issues.map((i) => i.path)).toEqual(['spec.a', 'spec.b', 'spec.c', 'spec.d']);
    expect(error.message).toBe('Pod/warren-reviewer-12 is not a valid manifest: spec.a: is not a field of the schema; spec.b: is not a field of the schema; spec.c: is not a field of the schema; and 1 more');
  });
});
