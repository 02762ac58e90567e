/**
 * The PATCH bodies the fake API server applies: JSON Merge Patch (RFC 7386,
 * `application/merge-patch+json`), JSON Patch (RFC 6902, `application/json-patch+json`, the
 * content type `@kubernetes/client-node` 1.x's typed clients send by default) and Kubernetes'
 * strategic merge patch (`application/strategic-merge-patch+json`, `KubernetesObjectApi.patch`'s default).
 */

/** A patch that cannot be applied; the server answers it with 422 (JSON Patch `test`) or 400. */
export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Applies a JSON Merge Patch (RFC 7386 §2 `MergePatch`): objects merge key by key, `null` removes
 * a key, anything else (arrays included) replaces. Returns a new value; `target` is not changed.
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isRecord(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

/** JSON value equality (RFC 6902 §4.6): same type, arrays element by element, objects key by key in any order. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  if (isRecord(a)) {
    if (!isRecord(b)) return false;
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => key in b && deepEqual(a[key], b[key]));
  }
  return a === b;
}

/** Decodes a JSON Pointer (RFC 6901) into its reference tokens. */
function pointerTokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError(`invalid JSON pointer ${JSON.stringify(pointer)}: must start with '/'`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The container a pointer's last token lives in, and that token. */
function parentOf(root: unknown, tokens: readonly string[], pointer: string): { parent: unknown; key: string } {
  let current = root;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(current)) current = current[Number(token)];
    else if (isRecord(current)) current = current[token];
    else current = undefined;
    if (current === undefined) throw new PatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  }
  return { parent: current, key: tokens[tokens.length - 1] ?? '' };
}

function arrayIndex(key: string, length: number, allowEnd: boolean, pointer: string): number {
  if (allowEnd && key === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw new PatchError(`invalid array index ${JSON.stringify(key)} in ${JSON.stringify(pointer)}`);
  const index = Number(key);
  if (index > length || (!allowEnd && index === length)) {
    throw new PatchError(`array index ${index} out of bounds in ${JSON.stringify(pointer)}`);
  }
  return index;
}

function getAt(root: unknown, pointer: string): unknown {
  const tokens = pointerTokens(pointer);
  if (tokens.length === 0) return root;
  const { parent, key } = parentOf(root, tokens, pointer);
  const value: unknown = Array.isArray(parent) ? (parent as unknown[])[arrayIndex(key, parent.length, false, pointer)] : isRecord(parent) ? parent[key] : undefined;
  if (value === undefined) throw new PatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  return value;
}

function removeAt(root: unknown, pointer: string): unknown {
  const tokens = pointerTokens(pointer);
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  const { parent, key } = parentOf(root, tokens, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent.length, false, pointer), 1)[0];
  if (!isRecord(parent) || !(key in parent)) throw new PatchError(`unable to remove nonexistent key: ${key}: missing value`);
  const value = parent[key];
  delete parent[key];
  return value;
}

/** Adds (`replace: false`) or replaces a value; returns the new root. */
function putAt(root: unknown, pointer: string, value: unknown, replace: boolean): unknown {
  const tokens = pointerTokens(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(root, tokens, pointer);
  if (Array.isArray(parent)) {
    const index = arrayIndex(key, parent.length, !replace, pointer);
    parent.splice(index, replace ? 1 : 0, value);
  } else if (isRecord(parent)) {
    if (replace && !(key in parent)) throw new PatchError(`replace operation does not apply: doc is missing key: ${pointer}`);
    parent[key] = value;
  } else {
    throw new PatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  }
  return root;
}

/**
 * Applies a JSON Patch (RFC 6902 §4: `add`, `remove`, `replace`, `move`, `copy`, `test`) in order.
 * Returns a new document; `target` is not changed.
 * @throws {PatchError} for a malformed operation, a missing path, or a failed `test`.
 */
export function applyJsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new PatchError('a JSON Patch must be an array of operations');
  let doc = structuredClone(target);
  for (const [i, raw] of operations.entries()) {
    if (!isRecord(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError(`operation ${i} needs string 'op' and 'path'`);
    }
    const path = raw.path;
    switch (raw.op) {
      case 'add':
        doc = putAt(doc, path, structuredClone(raw.value), false);
        break;
      case 'replace':
        doc = putAt(doc, path, structuredClone(raw.value), true);
        break;
      case 'remove':
        removeAt(doc, path);
        break;
      case 'move': {
        if (typeof raw.from !== 'string') throw new PatchError(`operation ${i} ('move') needs string 'from'`);
        const value = removeAt(doc, raw.from);
        doc = putAt(doc, path, value, false);
        break;
      }
      case 'copy': {
        if (typeof raw.from !== 'string') throw new PatchError(`operation ${i} ('copy') needs string 'from'`);
        doc = putAt(doc, path, structuredClone(getAt(doc, raw.from)), false);
        break;
      }
      case 'test':
        if (!deepEqual(getAt(doc, path), raw.value)) {
          throw new PatchError(`testing value ${path} failed: test failed`);
        }
        break;
      default:
        throw new PatchError(`Unexpected kind: ${raw.op}`);
    }
  }
  return doc;
}

/**
 * Merge keys of the lists that a strategic merge patch merges element by element, by field name
 * (the `patchStrategy:"merge"` and `patchMergeKey` tags of the core/v1 and meta/v1 types the fake
 * serves). Lists not named here are replaced whole, as in a merge patch.
 */
const STRATEGIC_MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  ownerReferences: 'uid',
  conditions: 'type',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
};
/** Lists of scalars a strategic merge patch unites rather than replaces. */
const STRATEGIC_SET_LISTS = new Set(['finalizers']);

function mergeKeyed(target: unknown[], patch: unknown[], key: string): unknown[] {
  if (patch.some((item) => isRecord(item) && item.$patch === 'replace')) {
    return patch.filter((item) => !(isRecord(item) && item.$patch === 'replace')).map((item) => structuredClone(item));
  }
  const result = target.map((item) => structuredClone(item));
  for (const item of patch) {
    if (!isRecord(item) || !(key in item)) {
      throw new PatchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key}`);
    }
    const index = result.findIndex((existing) => isRecord(existing) && deepEqual(existing[key], item[key]));
    if (item.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    if (index >= 0) result[index] = applyStrategicMergePatch(result[index], item);
    else result.push(applyStrategicMergePatch({}, item));
  }
  return result;
}

/**
 * Applies a strategic merge patch (`application/strategic-merge-patch+json`,
 * https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md):
 * maps merge as in a merge patch (`null` removes a key); the lists named in the Kubernetes types
 * with a merge key (containers and volumes by `name`, volume mounts by `mountPath`, conditions by
 * `type`, …) merge element by element, an element with `$patch: delete` removes its match and one
 * with `$patch: replace` replaces the list; `$patch: replace`/`delete` on a map replace or remove
 * it; `finalizers` are united; other lists are replaced. `$setElementOrder`, `$retainKeys` and
 * `$deleteFromPrimitiveList` directives are ignored.
 * @throws {PatchError} for a merged list element without its merge key.
 */
export function applyStrategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const replaced = structuredClone(patch);
    delete replaced.$patch;
    return replaced;
  }
  const result: Record<string, unknown> = isRecord(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete result[key];
      continue;
    }
    if (isRecord(value) && value.$patch === 'delete') {
      delete result[key];
      continue;
    }
    const mergeKey = STRATEGIC_MERGE_KEYS[key];
    const current = result[key];
    if (Array.isArray(value) && mergeKey !== undefined && value.every(isRecord)) {
      result[key] = mergeKeyed(Array.isArray(current) ? current : [], value, mergeKey);
    } else if (Array.isArray(value) && STRATEGIC_SET_LISTS.has(key)) {
      const united = Array.isArray(current) ? [...(current as unknown[])] : [];
      for (const item of value) if (!united.some((existing) => deepEqual(existing, item))) united.push(item);
      result[key] = united;
    } else {
      result[key] = applyStrategicMergePatch(current, value);
    }
  }
  return result;
}
