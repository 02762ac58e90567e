import { WarrenError } from '@warren/core';

/**
 * An error of the secret store, with one code per cause (see the package README for meaning and
 * remedy). No message ever carries a secret's value; they name the target, the secret and the path.
 * - `WARREN_SECRET_INVALID`: a bad target, secret name, environment variable name or value.
 * - `WARREN_SECRET_MISSING`: an environment variable names a secret the agent does not have.
 */
export class SecretError extends WarrenError {}

/**
 * The key file cannot be used (`WARREN_SECRET_KEY`): missing while secrets are stored, readable by
 * group or others, owned by another user, not a regular file, or not exactly 32 bytes.
 */
export class SecretKeyError extends WarrenError {
  constructor(
    /** The key file's path. */
    readonly keyPath: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_SECRET_KEY', `secrets key file ${keyPath}: ${message}`, options);
  }
}

/**
 * A stored secret does not decrypt (`WARREN_SECRET_DECRYPT`): it was written with another key, or
 * its row was altered (ciphertext, nonce, tag, scope, name or gateway flag). AES-GCM authentication
 * cannot tell these apart; `wrongKey` is true when the row records another key's id.
 */
export class SecretDecryptError extends WarrenError {
  constructor(
    /** The secret's target as written on the command line: a template (`coder`) or an agent (`coder-2`). */
    readonly target: string,
    /** The secret's name (`OPENAI_API_KEY`). */
    readonly secretName: string,
    readonly wrongKey: boolean,
    options?: ErrorOptions,
  ) {
    super(
      'WARREN_SECRET_DECRYPT',
      `secret ${secretName} of ${target} does not decrypt: ${wrongKey ? 'it was written with another key file' : 'its stored row was altered'}`,
      options,
    );
  }
}

/**
 * Secret files could not be delivered into an agent's home (`WARREN_SECRET_DELIVERY`): `.warren` or
 * `.warren/secrets` is a symlink or not a directory, or a file operation failed. `path` names where.
 */
export class SecretDeliveryError extends WarrenError {
  constructor(
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_SECRET_DELIVERY', `${path}: ${message}`, options);
  }
}
