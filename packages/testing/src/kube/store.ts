/**
 * The fake API server's object store: objects by resource type, namespace and name, one global
 * resource version counter (etcd's revision), the event history watches resume from, and the
 * watches themselves.
 */
import { randomUUID } from 'node:crypto';
import type { ResourceType } from './resources.js';
import type { KubeObject } from './types.js';

/** A watch event type (meta/v1 `WatchEvent.type`). */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** One change, kept for watches. */
export interface StoredEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly resourceVersion: number;
  readonly resource: ResourceType;
  readonly namespace: string;
  /** The object as written (for DELETED: its last state with the deletion's resource version). */
  readonly object: KubeObject;
}

/** A watch's subscription: the events of one resource type that pass its filter. */
export interface StoreWatcher {
  readonly resource: ResourceType;
  /** `''` for every namespace. */
  readonly namespace: string;
  readonly matches: (object: KubeObject) => boolean;
  readonly send: (event: StoredEvent) => void;
}

/** `ns/name` (or `/name` for cluster-scoped objects). */
function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

const GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Five random characters from the alphabet the API server's name generator uses. */
export function randomSuffix(): string {
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += GENERATE_NAME_ALPHABET[Math.floor(Math.random() * GENERATE_NAME_ALPHABET.length)];
  return suffix;
}

/** Now as an RFC 3339 UTC time with seconds precision, as `metav1.Time` is written. */
export function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The object store. Every write is synchronous, so a watch never misses an event between its replay and its subscription. */
export class KubeStore {
  #revision = 0;
  /** Events with a resource version at or below this one are gone from the history. */
  #compactedRevision = 0;
  readonly #objects = new Map<ResourceType, Map<string, KubeObject>>();
  readonly #history: StoredEvent[] = [];
  readonly #watchers = new Set<StoreWatcher>();

  constructor(readonly historyLimit: number) {}

  /** The current revision. */
  get revision(): number {
    return this.#revision;
  }

  /** The oldest revision a watch may resume from. */
  get compactedRevision(): number {
    return this.#compactedRevision;
  }

  #bucket(resource: ResourceType): Map<string, KubeObject> {
    let bucket = this.#objects.get(resource);
    if (bucket === undefined) {
      bucket = new Map();
      this.#objects.set(resource, bucket);
    }
    return bucket;
  }

  /** The stored object (not a copy: callers copy before handing it out). */
  get(resource: ResourceType, namespace: string, name: string): KubeObject | undefined {
    return this.#bucket(resource).get(keyOf(resource.namespaced ? namespace : '', name));
  }

  /** Stored objects of a type in one namespace (`''`: all), ordered by namespace, then name. */
  list(resource: ResourceType, namespace: string): KubeObject[] {
    const items: [string, KubeObject][] = [];
    for (const [key, object] of this.#bucket(resource)) {
      if (namespace === '' || !resource.namespaced || object.metadata?.namespace === namespace) items.push([key, object]);
    }
    items.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return items.map(([, object]) => object);
  }

  /** Every stored object of every type, for owner-reference lookups. */
  *all(): Generator<[ResourceType, KubeObject]> {
    for (const [resource, bucket] of this.#objects) {
      for (const object of [...bucket.values()]) yield [resource, object];
    }
  }

  #record(type: StoredEvent['type'], resource: ResourceType, object: KubeObject): void {
    const event: StoredEvent = { type, resourceVersion: this.#revision, resource, namespace: object.metadata?.namespace ?? '', object: structuredClone(object) };
    this.#history.push(event);
    while (this.#history.length > this.historyLimit) {
      const dropped = this.#history.shift();
      if (dropped !== undefined) this.#compactedRevision = dropped.resourceVersion;
    }
    for (const watcher of this.#watchers) this.#deliver(watcher, event);
  }

  #deliver(watcher: StoreWatcher, event: StoredEvent): void {
    if (watcher.resource !== event.resource) return;
    if (watcher.namespace !== '' && watcher.namespace !== event.namespace) return;
    if (watcher.matches(event.object)) watcher.send(event);
  }

  /**
   * Stores a new object: assigns `uid`, `resourceVersion`, `creationTimestamp` and `generation`, and
   * sends ADDED. The caller has checked that the name is free.
   * @returns the stored object.
   */
  create(resource: ResourceType, object: KubeObject): KubeObject {
    this.#revision++;
    const metadata = (object.metadata ??= {});
    metadata.uid = randomUUID();
    metadata.resourceVersion = String(this.#revision);
    metadata.creationTimestamp = nowTimestamp();
    if (resource.plural !== 'namespaces' && resource.plural !== 'events') metadata.generation = 1;
    this.#bucket(resource).set(keyOf(resource.namespaced ? (metadata.namespace ?? '') : '', metadata.name ?? ''), object);
    this.#record('ADDED', resource, object);
    return object;
  }

  /**
   * Replaces a stored object with `next` (same name), bumps `resourceVersion` (and `generation`
   * when `spec` changed), and sends MODIFIED.
   * @returns the stored object.
   */
  update(resource: ResourceType, next: KubeObject, specChanged: boolean): KubeObject {
    this.#revision++;
    const metadata = (next.metadata ??= {});
    metadata.resourceVersion = String(this.#revision);
    if (specChanged && typeof metadata.generation === 'number') metadata.generation++;
    this.#bucket(resource).set(keyOf(resource.namespaced ? (metadata.namespace ?? '') : '', metadata.name ?? ''), next);
    this.#record('MODIFIED', resource, next);
    return next;
  }

  /**
   * Removes a stored object and sends DELETED with its last state at a new resource version.
   * @returns the removed object, or undefined if it was not there.
   */
  remove(resource: ResourceType, namespace: string, name: string): KubeObject | undefined {
    const bucket = this.#bucket(resource);
    const key = keyOf(resource.namespaced ? namespace : '', name);
    const object = bucket.get(key);
    if (object === undefined) return undefined;
    bucket.delete(key);
    this.#revision++;
    (object.metadata ??= {}).resourceVersion = String(this.#revision);
    this.#record('DELETED', resource, object);
    return object;
  }

  /** Drops the whole history (etcd compaction at the current revision). */
  compact(): void {
    this.#history.length = 0;
    this.#compactedRevision = this.#revision;
  }

  /**
   * Subscribes a watcher, first replaying the kept events after `fromRevision` that it matches.
   * @returns false, subscribing nothing, when `fromRevision` is older than the kept history.
   */
  watchFrom(watcher: StoreWatcher, fromRevision: number): boolean {
    if (fromRevision < this.#compactedRevision) return false;
    for (const event of this.#history) if (event.resourceVersion > fromRevision) this.#deliver(watcher, event);
    this.#watchers.add(watcher);
    return true;
  }

  /** Subscribes a watcher to changes from now on. */
  watchNow(watcher: StoreWatcher): void {
    this.#watchers.add(watcher);
  }

  unwatch(watcher: StoreWatcher): void {
    this.#watchers.delete(watcher);
  }
}
