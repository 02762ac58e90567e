import { WarrenError } from '@warren/core';

/**
 * A repository could not be mirrored (code `WARREN_REPOSITORY_SYNC`: git failed, the message
 * carries its stderr) or was named wrongly (code `WARREN_REPOSITORY_INVALID`: not an absolute
 * path or a URL). `source` is the repository as the template or task named it.
 */
export class RepositoryError extends WarrenError {
  constructor(
    code: 'WARREN_REPOSITORY_SYNC' | 'WARREN_REPOSITORY_INVALID',
    readonly source: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, `repository ${JSON.stringify(source)}: ${message}`, options);
  }
}

/**
 * A template's seed file list is invalid (code `WARREN_SEED_INVALID`): a path that is absolute,
 * leaves the home, or repeats; a file with neither or both of `content` and `sourcePath`; a
 * `sourcePath` that cannot be read; a home that is not a real directory. `path` names the entry.
 */
export class SeedError extends WarrenError {
  constructor(
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_SEED_INVALID', `${path}: ${message}`, options);
  }
}
