import { readFileSync } from 'node:fs';
import { AccountRangeError } from './errors.js';

/** The files that list the ids the host already uses. */
export interface HostIdFiles {
  /** Default `/etc/passwd`. */
  readonly passwd: string;
  /** Default `/etc/group`. */
  readonly group: string;
  /** Default `/etc/subuid`. */
  readonly subuid: string;
  /** Default `/etc/subgid`. */
  readonly subgid: string;
}

function readLines(path: string): string[] | undefined {
  try {
    return readFileSync(path, 'utf8').split('\n');
  } catch (error) {
    // A host without subordinate ids has no /etc/subuid; an absent file lists nothing.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AccountRangeError(`cannot read ${path}: ${(error as Error).message}`, path);
  }
}

/**
 * Checks that no host id falls in `[uidMin, uidMax]`: the uid and primary gid of every passwd(5)
 * entry, the gid of every group(5) entry, and no `name:start:count` range of subuid(5)/subgid(5)
 * overlaps it. Blank lines and `#` comments are skipped; `+`/`-` NIS compat lines and lines with a
 * non-numeric id are skipped (they name no id). A missing file counts as empty.
 * @throws {AccountRangeError} naming the file, line and entry of the first collision.
 */
export function checkHostIds(files: HostIdFiles, uidMin: number, uidMax: number): void {
  const range = `${uidMin}-${uidMax}`;
  const inRange = (id: number): boolean => id >= uidMin && id <= uidMax;
  const scan = (path: string, visit: (fields: string[], line: number) => void): void => {
    readLines(path)?.forEach((text, index) => {
      const trimmed = text.trim();
      if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('+') || trimmed.startsWith('-')) return;
      visit(trimmed.split(':'), index + 1);
    });
  };
  const id = (field: string | undefined): number | undefined =>
    field !== undefined && /^[0-9]+$/.test(field) ? Number(field) : undefined;

  scan(files.passwd, ([name = '', , uidField, gidField], line) => {
    for (const [kind, value] of [
      ['uid', id(uidField)],
      ['gid', id(gidField)],
    ] as const) {
      if (value !== undefined && inRange(value)) {
        throw new AccountRangeError(
          `${files.passwd}:${line}: user '${name}' has ${kind} ${value}, inside the agent id range ${range}`,
          files.passwd,
          line,
          name,
        );
      }
    }
  });
  scan(files.group, ([name = '', , gidField], line) => {
    const gid = id(gidField);
    if (gid !== undefined && inRange(gid)) {
      throw new AccountRangeError(
        `${files.group}:${line}: group '${name}' has gid ${gid}, inside the agent id range ${range}`,
        files.group,
        line,
        name,
      );
    }
  });
  for (const path of [files.subuid, files.subgid]) {
    scan(path, ([name = '', startField, countField], line) => {
      const start = id(startField);
      const count = id(countField);
      if (start === undefined || count === undefined || count === 0) return;
      const end = start + count - 1;
      if (start <= uidMax && end >= uidMin) {
        throw new AccountRangeError(
          `${path}:${line}: subordinate ids of '${name}' (${start}-${end}) overlap the agent id range ${range}`,
          path,
          line,
          name,
        );
      }
    });
  }
}
