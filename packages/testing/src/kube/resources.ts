/**
 * The resource types the fake API server serves, as the API server's discovery documents describe
 * them (`GET /api/v1`, `GET /apis/networking.k8s.io/v1`).
 */

/** One served resource type. */
export interface ResourceType {
  /** API group, `''` for the core group. */
  readonly group: string;
  /** API version inside the group, such as `v1`. */
  readonly version: string;
  /** `apiVersion` of its objects: `v1` or `networking.k8s.io/v1`. */
  readonly apiVersion: string;
  /** Plural name in paths, such as `pods`. */
  readonly plural: string;
  readonly singular: string;
  /** `kind` of its objects, such as `Pod`. */
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Whether it has a `status` subresource (updates of the main resource keep the stored status). */
  readonly hasStatus: boolean;
  /** Whether DELETE answers with the deleted object (else with a `Status`), as its REST storage does. */
  readonly returnsDeletedObject: boolean;
  /** Field selector paths it supports besides `metadata.name` and `metadata.namespace`. */
  readonly selectableFields: readonly string[];
}

function core(plural: string, kind: string, rest: Partial<ResourceType> = {}): ResourceType {
  return {
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    plural,
    singular: kind.toLowerCase(),
    kind,
    namespaced: true,
    shortNames: [],
    hasStatus: false,
    returnsDeletedObject: false,
    selectableFields: [],
    ...rest,
  };
}

/** Every resource type served, by `<group>/<plural>` (`/pods`, `networking.k8s.io/networkpolicies`). */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  core('namespaces', 'Namespace', { namespaced: false, shortNames: ['ns'], hasStatus: true, returnsDeletedObject: true, selectableFields: ['status.phase'] }),
  core('pods', 'Pod', {
    shortNames: ['po'],
    hasStatus: true,
    returnsDeletedObject: true,
    selectableFields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  }),
  core('persistentvolumeclaims', 'PersistentVolumeClaim', { shortNames: ['pvc'], hasStatus: true, returnsDeletedObject: true }),
  core('secrets', 'Secret', { selectableFields: ['type'] }),
  core('serviceaccounts', 'ServiceAccount', { shortNames: ['sa'] }),
  core('configmaps', 'ConfigMap', { shortNames: ['cm'] }),
  core('events', 'Event', { shortNames: ['ev'] }),
  {
    group: 'networking.k8s.io',
    version: 'v1',
    apiVersion: 'networking.k8s.io/v1',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    kind: 'NetworkPolicy',
    namespaced: true,
    shortNames: ['netpol'],
    hasStatus: false,
    returnsDeletedObject: false,
    selectableFields: [],
  },
];

/** The resource type served at `group`/`version`/`plural`, or undefined. */
export function findResourceType(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((type) => type.group === group && type.version === version && type.plural === plural);
}

/** The resource type whose objects have this `apiVersion` and `kind`, or undefined. */
export function resourceTypeOfKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((type) => type.apiVersion === apiVersion && type.kind === kind);
}

/** Verbs a resource's discovery entry lists. */
const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** The `APIResourceList` discovery document of one group version. */
export function apiResourceList(group: string, version: string): Record<string, unknown> {
  const types = RESOURCE_TYPES.filter((type) => type.group === group && type.version === version);
  const resources: Record<string, unknown>[] = [];
  for (const type of types) {
    resources.push({
      name: type.plural,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: type.plural === 'namespaces' ? VERBS.filter((v) => v !== 'deletecollection') : VERBS,
      ...(type.shortNames.length > 0 ? { shortNames: type.shortNames } : {}),
    });
    if (type.hasStatus) {
      resources.push({ name: `${type.plural}/status`, singularName: '', namespaced: type.namespaced, kind: type.kind, verbs: ['get', 'patch', 'update'] });
    }
    if (type.plural === 'pods') {
      resources.push({ name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? version : `${group}/${version}`, resources };
}

/** The `APIGroupList` discovery document of `GET /apis`. */
export function apiGroupList(): Record<string, unknown> {
  const groups = [...new Set(RESOURCE_TYPES.filter((type) => type.group !== '').map((type) => type.group))];
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups.map((name) => {
      const versions = [...new Set(RESOURCE_TYPES.filter((type) => type.group === name).map((type) => type.version))];
      const entries = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
      return { name, versions: entries, preferredVersion: entries[0] };
    }),
  };
}
