import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ManifestError } from './errors.js';
import { formatFieldPath } from './field-path.js';
import type { FieldPathSegment } from './field-path.js';

/** What a manifest problem breaks: the kind is not one we check, the schema, or an unknown field. */
export const ManifestRule = {
  /** `apiVersion`/`kind` are missing or not a kind `validateManifest` knows. */
  Kind: 'kind',
  /** The value breaks the kind's OpenAPI schema (type, enum, format, required field). */
  Schema: 'schema',
  /** The field is not in the kind's schema (the API server's strict field validation rejects it). */
  UnknownField: 'unknown-field',
} as const;
/** One of `ManifestRule`'s values. */
export type ManifestRule = (typeof ManifestRule)[keyof typeof ManifestRule];

/**
 * One problem of a manifest: `path` is the Kubernetes field path (`spec.containers[0].image`,
 * `metadata.labels[team]`; empty for the whole object), `rule` what it breaks, `message` a sentence.
 */
export interface ManifestIssue {
  readonly path: string;
  readonly rule: ManifestRule;
  readonly message: string;
}

/** The model prototype's `validate()` runs the kind's compiled OpenAPI schema on `this`. */
interface ModelClass {
  readonly prototype: { validate(this: unknown): void };
}

/** The kinds `validateManifest` checks, by `<apiVersion>/<kind>`. */
const MODELS: ReadonlyMap<string, ModelClass> = new Map<string, ModelClass>([
  ['v1/Pod', Pod],
  ['v1/PersistentVolumeClaim', PersistentVolumeClaim],
  ['v1/Secret', Secret],
  ['v1/ServiceAccount', ServiceAccount],
  ['networking.k8s.io/v1/NetworkPolicy', NetworkPolicy],
]);

/** The kinds `validateManifest` knows, as `<apiVersion>/<kind>`. */
export const VALIDATED_KINDS: readonly string[] = [...MODELS.keys()];

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Records which properties the schema validator reads of each object (it reads every property its
 * schema declares, and enumerates the keys of maps such as labels), so that afterwards a key it never
 * read is a field the schema does not know.
 */
class FieldProbe {
  readonly #reads = new WeakMap<object, Set<string>>();
  readonly #maps = new WeakSet<object>();

  wrap(value: unknown): unknown {
    if (typeof value !== 'object' || value === null) return value;
    return new Proxy(value, {
      get: (target, key, receiver): unknown => {
        if (typeof key === 'string') {
          let reads = this.#reads.get(target);
          if (reads === undefined) this.#reads.set(target, (reads = new Set()));
          reads.add(key);
        }
        return this.wrap(Reflect.get(target, key, receiver));
      },
      ownKeys: (target) => {
        this.#maps.add(target);
        return Reflect.ownKeys(target);
      },
    });
  }

  isMap(value: object): boolean {
    return this.#maps.has(value);
  }

  /** Every key of `value` (recursively) the validator never read, with the segments of its path. */
  unknownFields(value: unknown, path: FieldPathSegment[], mapKeys: Set<number>, out: { path: string }[]): void {
    if (Array.isArray(value)) {
      value.forEach((item, index) => this.unknownFields(item, [...path, index], mapKeys, out));
      return;
    }
    if (!isObject(value)) return;
    const reads = this.#reads.get(value);
    const isMap = this.#maps.has(value);
    for (const key of Object.keys(value)) {
      const keyPath = [...path, key];
      const keyMaps = isMap ? new Set([...mapKeys, path.length]) : mapKeys;
      if (!isMap && reads?.has(key) !== true) {
        out.push({ path: formatFieldPath(keyPath, keyMaps) });
        continue;
      }
      this.unknownFields(value[key], keyPath, keyMaps, out);
    }
  }
}

/** An ajv error as the compiled validators report it. */
interface AjvError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
}

/** Turns an ajv JSON Pointer into a field path, telling list indexes and map keys by the data. */
function pointerToFieldPath(root: unknown, pointer: string, probe: FieldProbe, extra?: string): string {
  const tokens = pointer === '' ? [] : pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) tokens.push(extra);
  const segments: FieldPathSegment[] = [];
  const mapKeys = new Set<number>();
  let node: unknown = root;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      segments.push(Number(token));
      node = node[Number(token)];
      continue;
    }
    if (isObject(node) && probe.isMap(node)) mapKeys.add(segments.length);
    segments.push(token);
    node = isObject(node) ? node[token] : undefined;
  }
  return formatFieldPath(segments, mapKeys);
}

function nameOf(manifest: unknown): string {
  if (!isObject(manifest)) return 'manifest';
  const kind = typeof manifest.kind === 'string' ? manifest.kind : 'manifest';
  const metadata = manifest.metadata;
  return isObject(metadata) && typeof metadata.name === 'string' ? `${kind}/${metadata.name}` : kind;
}

/**
 * Checks a manifest as the API server would before storing it: against its kind's OpenAPI schema
 * with `kubernetes-models` (its model's `validate()`: types, enums, formats, required fields), and
 * strictly for unknown fields, anywhere (as `kubectl apply --validate=strict` / the API server's
 * `fieldValidation=Strict` rejects them). The manifest is taken as JSON (values JSON cannot hold are
 * dropped first; a cycle or a BigInt is an issue at the root).
 * @param manifest a parsed object of one of `VALIDATED_KINDS`.
 * @returns every issue found; empty when the manifest is valid.
 */
export function validateManifest(manifest: unknown): ManifestIssue[] {
  let data: unknown;
  try {
    data = manifest === undefined ? undefined : JSON.parse(JSON.stringify(manifest));
  } catch (error) {
    return [{ path: '', rule: ManifestRule.Kind, message: `is not JSON data (${(error as Error).message})` }];
  }
  if (!isObject(data)) return [{ path: '', rule: ManifestRule.Kind, message: 'must be an object' }];
  const apiVersion = data.apiVersion;
  const kind = data.kind;
  const model = typeof apiVersion === 'string' && typeof kind === 'string' ? MODELS.get(`${apiVersion}/${kind}`) : undefined;
  if (model === undefined) {
    return [
      {
        path: typeof kind === 'string' ? 'kind' : 'apiVersion',
        rule: ManifestRule.Kind,
        message: `${String(apiVersion)}/${String(kind)} is not a kind validateManifest knows (${VALIDATED_KINDS.join(', ')})`,
      },
    ];
  }
  const probe = new FieldProbe();
  const issues: ManifestIssue[] = [];
  try {
    model.prototype.validate.call(probe.wrap(data));
  } catch (error) {
    const errors = (error as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) throw error;
    for (const e of errors as AjvError[]) {
      if (e.keyword === 'required' && typeof e.params.missingProperty === 'string') {
        issues.push({ path: pointerToFieldPath(data, e.instancePath, probe, e.params.missingProperty), rule: ManifestRule.Schema, message: 'is required' });
      } else {
        issues.push({ path: pointerToFieldPath(data, e.instancePath, probe), rule: ManifestRule.Schema, message: e.message ?? e.keyword });
      }
    }
  }
  const unknown: { path: string }[] = [];
  probe.unknownFields(data, [], new Set(), unknown);
  for (const u of unknown) issues.push({ path: u.path, rule: ManifestRule.UnknownField, message: 'is not a field of the schema' });
  return issues;
}

/**
 * `validateManifest`, throwing when anything is wrong.
 * @throws {ManifestError} listing every issue (`issues`), named `<kind>/<name>`.
 */
export function assertValidManifest(manifest: unknown): void {
  const issues = validateManifest(manifest);
  if (issues.length > 0) throw new ManifestError(nameOf(manifest), issues);
}
