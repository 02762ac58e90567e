import { SecretError } from './errors.js';

/** The two kinds of scope a secret belongs to. */
export const ScopeKind = { template: 'template', agent: 'agent' } as const;
/** `template` or `agent`. */
export type ScopeKind = (typeof ScopeKind)[keyof typeof ScopeKind];

/**
 * Whom a secret belongs to: every agent of a template (`{ kind: 'template', name: 'coder' }`) or one
 * agent (`{ kind: 'agent', name: 'coder-2' }`).
 */
export interface SecretTarget {
  readonly kind: ScopeKind;
  readonly name: string;
}

/** A template name, as the templates schema allows: 1-16 lowercase letters or digits, starting with a letter. */
export const TEMPLATE_NAME = /^[a-z][a-z0-9]{0,15}$/;
/** An agent name: its template's name, `-`, a number from 1 without leading zeros. */
export const AGENT_NAME = /^([a-z][a-z0-9]{0,15})-([1-9][0-9]{0,8})$/;
/** A secret name: an upper-case identifier of at most 64 characters, as environment variables are written. */
export const SECRET_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
/** An environment variable name a template may give a secret (POSIX portable names). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The largest value stored, in bytes of UTF-8: 64 KiB. */
export const MAX_SECRET_BYTES = 64 * 1024;

/**
 * Parses a command-line target: a template name (`coder`) or an agent name (`coder-2`).
 * @throws {SecretError} `WARREN_SECRET_INVALID` naming the text when it is neither.
 */
export function parseSecretTarget(text: string): SecretTarget {
  if (TEMPLATE_NAME.test(text)) return { kind: ScopeKind.template, name: text };
  if (AGENT_NAME.test(text)) return { kind: ScopeKind.agent, name: text };
  throw new SecretError(
    'WARREN_SECRET_INVALID',
    `target ${JSON.stringify(text)} is neither a template name (1-16 lowercase letters or digits, starting with a letter: coder) nor an agent name (template-number: coder-2)`,
  );
}

/** The template an agent name belongs to (`coder-2` → `coder`). @throws {SecretError} if `agent` is no agent name. */
export function templateOfAgent(agent: string): string {
  const match = AGENT_NAME.exec(agent);
  if (match === null) throw new SecretError('WARREN_SECRET_INVALID', `agent ${JSON.stringify(agent)} is no agent name (template-number: coder-2)`);
  return match[1]!;
}

/** @throws {SecretError} `WARREN_SECRET_INVALID` unless `name` matches {@link SECRET_NAME}. */
export function checkSecretName(name: string): void {
  if (!SECRET_NAME.test(name)) {
    throw new SecretError(
      'WARREN_SECRET_INVALID',
      `secret name ${JSON.stringify(name)} must be 1-64 upper-case letters, digits or _, not starting with a digit (OPENAI_API_KEY)`,
    );
  }
}

/**
 * Checks a secret's value and returns it as UTF-8 bytes.
 * @throws {SecretError} `WARREN_SECRET_INVALID` (naming the target and the secret, never the value)
 *   when it is empty, above {@link MAX_SECRET_BYTES}, or bytes that are not UTF-8 text.
 */
export function secretBytes(target: SecretTarget, name: string, value: string | Uint8Array): Buffer {
  const where = `secret ${name} of ${target.name}`;
  let bytes: Buffer;
  if (typeof value === 'string') {
    bytes = Buffer.from(value, 'utf8');
  } else {
    bytes = Buffer.from(value); // a copy: the store zeroes its own bytes after sealing, never the caller's
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new SecretError('WARREN_SECRET_INVALID', `${where}: the value is not UTF-8 text`);
    }
  }
  if (bytes.length === 0) throw new SecretError('WARREN_SECRET_INVALID', `${where}: the value is empty`);
  if (bytes.length > MAX_SECRET_BYTES) {
    throw new SecretError('WARREN_SECRET_INVALID', `${where}: the value has ${bytes.length} bytes, more than the ${MAX_SECRET_BYTES} allowed`);
  }
  return bytes;
}
