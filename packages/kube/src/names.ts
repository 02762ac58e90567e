import { createHash } from 'node:crypto';

/** Longest DNS-1123 label: 63 characters (RFC 1123 §2.1 as Kubernetes applies it to object names). */
export const DNS1123_LABEL_MAX = 63;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** True if `value` is a DNS-1123 label: at most 63 of `a-z`, `0-9` and `-`, starting and ending alphanumeric. */
export function isDns1123Label(value: string): boolean {
  return value.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(value);
}

/** True if `value` is a DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels. */
export function isDns1123Subdomain(value: string): boolean {
  return value.length <= 253 && DNS1123_SUBDOMAIN.test(value);
}

/**
 * True if `value` is a valid label value: empty, or at most 63 of `A-Za-z0-9-_.` starting and ending
 * alphanumeric (Kubernetes "Labels and Selectors", syntax and character set).
 */
export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/**
 * True if `key` is a valid label or annotation key: an optional DNS-1123 subdomain prefix of at most
 * 253 characters and `/`, then a name of at most 63 of `A-Za-z0-9-_.` starting and ending alphanumeric.
 */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

/**
 * Derives a DNS-1123 label from `parts` joined by `-`: lowercased, every run of characters outside
 * `a-z0-9` turned into one `-`, leading and trailing `-` trimmed. When that changed the text or made
 * it longer than 63 characters, the result is cut to fit and ends in `-` plus the first 8 hex digits
 * of the SHA-256 of the joined parts, so two inputs that normalise alike still get distinct names.
 * @example dns1123Label('warren', 'coder-1', 'home') === 'warren-coder-1-home'
 * @throws {Error} if nothing alphanumeric is left (the callers validate names first).
 */
export function dns1123Label(...parts: string[]): string {
  const joined = parts.join('-');
  const normal = joined
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (normal === '') throw new Error(`'${joined}' has no character a DNS-1123 label can hold`);
  if (normal === joined && normal.length <= DNS1123_LABEL_MAX) return normal;
  const hash = createHash('sha256').update(joined).digest('hex').slice(0, 8);
  const head = normal.slice(0, DNS1123_LABEL_MAX - hash.length - 1).replace(/-+$/, '');
  return `${head}-${hash}`;
}

/** The names of the Kubernetes objects of one agent; every one is a DNS-1123 label. */
export interface AgentResourceNames {
  /** The Pod: `warren-<agent>`. */
  readonly pod: string;
  /** The PersistentVolumeClaim holding the home: `warren-<agent>-home`. */
  readonly persistentVolumeClaim: string;
  /** The Secret holding `nats.json`: `warren-<agent>-nats`. */
  readonly secret: string;
  /** The NetworkPolicy: `warren-<agent>`. */
  readonly networkPolicy: string;
  /** The ServiceAccount: `warren-<agent>`. */
  readonly serviceAccount: string;
}

/**
 * The object names of agent `agent`, derived with `dns1123Label` (hash-suffixed when the agent's
 * name is too long or not already lowercase alphanumerics and `-`).
 */
export function agentResourceNames(agent: string): AgentResourceNames {
  const base = dns1123Label('warren', agent);
  return {
    pod: base,
    persistentVolumeClaim: dns1123Label('warren', agent, 'home'),
    secret: dns1123Label('warren', agent, 'nats'),
    networkPolicy: base,
    serviceAccount: base,
  };
}
