/**
 * The program the file operations of an agent's computer run inside the agent's sandbox, as its
 * uid, with `/usr/bin/node -e` (the sandbox sees the host's /usr read-only; the agent runner needs
 * the same node). It is passed as source text so that nothing beyond the request has to be bound
 * into the sandbox.
 *
 * Protocol: `node -e <source> <request>` where `<request>` is JSON `{ op, path, … }`:
 * - `{ op: 'read', path, maxBytes }` → `{ path, sizeBytes, truncated, data }` (`data` base64 of the
 *   first `maxBytes` bytes);
 * - `{ op: 'write', path, contentPath, append }` → `{ path, sizeBytes }` (the bytes are read from
 *   `contentPath`, a read-only bind of the supervisor's transfer file);
 * - `{ op: 'list', path, maxEntries }` → `{ path, entries: [{ name, type, sizeBytes, modifiedMs }], truncated }`.
 * One JSON object is written to stdout; exit status 0 on success, 3 with `{ error: 'path', message }`
 * when the path resolves outside `$HOME`, 4 with `{ error: 'file', code, message }` for any other
 * failure (not found, not a directory, the file size limit). Returned paths are relative to
 * `$HOME` (`.` for the home itself).
 *
 * Paths are resolved the way the kernel will follow them (realpath(3); for a path that does not
 * exist yet, its nearest existing ancestor and any dangling symbolic link are followed by hand), so
 * a symbolic link cannot lead a read or a write out of the home.
 */
export const COMPUTER_HELPER_SOURCE = String.raw`'use strict';
const fs = require('fs');
const path = require('path');
const home = process.env.HOME;
class Refused extends Error {}
const inside = (p) => p === home || p.startsWith(home + '/');
const rel = (p) => (p === home ? '.' : p.slice(home.length + 1));
function lexical(given) {
  const abs = path.resolve(home, given);
  if (!inside(abs)) throw new Refused(JSON.stringify(given) + ' is outside the home ' + home);
  return abs;
}
function confined(real, given) {
  if (!inside(real)) throw new Refused(JSON.stringify(given) + ' resolves to ' + real + ', outside the home ' + home);
  return real;
}
function resolveReal(abs, depth) {
  if (depth > 40) throw Object.assign(new Error('too many levels of symbolic links'), { code: 'ELOOP' });
  try {
    return fs.realpathSync(abs);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  const parent = resolveReal(path.dirname(abs), depth + 1);
  const candidate = path.join(parent, path.basename(abs));
  let stat;
  try {
    stat = fs.lstatSync(candidate);
  } catch (error) {
    if (error.code === 'ENOENT') return candidate;
    throw error;
  }
  if (stat.isSymbolicLink()) return resolveReal(path.resolve(parent, fs.readlinkSync(candidate)), depth + 1);
  return candidate;
}
function typeOf(stat) {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'directory';
  if (stat.isSymbolicLink()) return 'symlink';
  return 'other';
}
const request = JSON.parse(process.argv[1]);
try {
  const abs = lexical(request.path);
  let result;
  if (request.op === 'read') {
    const real = confined(fs.realpathSync(abs), request.path);
    // Non-blocking, so that a FIFO or a device is refused below rather than waited on.
    const fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      fs.closeSync(fd);
      throw Object.assign(new Error(rel(real) + ' is not a regular file'), { code: stat.isDirectory() ? 'EISDIR' : 'EINVAL' });
    }
    const buffer = Buffer.alloc(Math.min(stat.size, request.maxBytes));
    let filled = 0;
    while (filled < buffer.length) {
      const n = fs.readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    fs.closeSync(fd);
    result = { path: rel(real), sizeBytes: stat.size, truncated: stat.size > filled, data: buffer.subarray(0, filled).toString('base64') };
  } else if (request.op === 'write') {
    const real = confined(resolveReal(abs, 0), request.path);
    let existing = null;
    try {
      existing = fs.lstatSync(real);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    if (existing !== null && !existing.isFile()) throw Object.assign(new Error(rel(real) + ' exists and is not a regular file'), { code: 'EEXIST' });
    fs.mkdirSync(path.dirname(real), { recursive: true });
    const content = fs.readFileSync(request.contentPath);
    fs.writeFileSync(real, content, { flag: request.append ? 'a' : 'w', mode: 0o644 });
    result = { path: rel(real), sizeBytes: fs.statSync(real).size };
  } else if (request.op === 'list') {
    const real = confined(fs.realpathSync(abs), request.path);
    const names = fs.readdirSync(real).sort();
    const entries = [];
    for (const name of names.slice(0, request.maxEntries)) {
      try {
        const stat = fs.lstatSync(path.join(real, name));
        entries.push({ name, type: typeOf(stat), sizeBytes: stat.size, modifiedMs: Math.floor(stat.mtimeMs) });
      } catch {
        // removed while listed
      }
    }
    result = { path: rel(real), entries, truncated: names.length > request.maxEntries };
  } else {
    throw new Error('unknown operation ' + request.op);
  }
  process.stdout.write(JSON.stringify(result));
} catch (error) {
  if (error instanceof Refused) {
    process.stdout.write(JSON.stringify({ error: 'path', message: error.message }));
    process.exitCode = 3;
  } else {
    process.stdout.write(JSON.stringify({ error: 'file', code: error.code || null, message: error.message }));
    process.exitCode = 4;
  }
}
`;
