import { WarrenError } from '@warren/core';

/**
 * An account cannot be made, found or removed: an invalid name (`account` holds it), an exhausted
 * range, a home that cannot be made. Code `WARREN_ACCOUNT`.
 */
export class AccountError extends WarrenError {
  constructor(
    /** The account (or template, group, host entry) name at fault, when there is one. */
    readonly account: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_ACCOUNT', message, options);
  }
}

/**
 * The configured uid/gid range is invalid or collides with the host: a user or group in
 * `/etc/passwd` or `/etc/group` has an id in it, or a subordinate id range in `/etc/subuid` or
 * `/etc/subgid` overlaps it. `file` and `line` locate the colliding entry, `entry` is its name.
 * Code `WARREN_ACCOUNT`.
 */
export class AccountRangeError extends AccountError {
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
    readonly entry?: string,
  ) {
    super(entry, message);
  }
}

/** An account of that name exists already with another template. Code `WARREN_ACCOUNT`. */
export class AccountExistsError extends AccountError {
  constructor(
    name: string,
    readonly existingTemplate: string,
    readonly requestedTemplate: string,
  ) {
    super(
      name,
      `account '${name}' exists with template '${existingTemplate}'; cannot create it again with template '${requestedTemplate}'`,
    );
  }
}
