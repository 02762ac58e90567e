/**
 * @warren/workspace: the host side of agents' git workspaces and homes. It keeps a bare, root-owned
 * mirror of each repository a template or task names (sandboxes clone from it read-only, so no
 * agent needs network or write access to it), and seeds agents' homes with a template's files.
 * Git never runs a hook, fsmonitor, filter or config from a tree an agent can write.
 *
 * ```ts
 * import { seedHome, syncMirror } from '@warren/workspace';
 * const mirror = await syncMirror({ source: '/srv/git/app', reposDir: 'var/repos' });
 * // { path: 'var/repos/2dc5dd4f490d83b8.git', name: '2dc5dd4f490d83b8', defaultBranch: 'main', commit: '9a1b…', created: true }
 * // bind mirror.path read-only at /opt/warren/repos/<name>.git in the agent's sandbox
 *
 * const seeded = await seedHome({
 *   homeDir: '/var/lib/warren/home/coder-1', uid: 61001, gid: 61001,
 *   files: [{ path: 'AGENTS.md', content: '# Rules\n' }, { path: '.config/tool.json', sourcePath: 'templates/coder/tool.json' }],
 * });
 * // { written: ['AGENTS.md', '.config/tool.json'], kept: [], refused: [] }
 * ```
 */
export { RepositoryError, SeedError } from './errors.js';
export { HOST_GIT_CONFIG, MIRROR_TIMEOUT_MS, mirrorName, redactSource, syncMirror, validateSource } from './mirror.js';
export type { Mirror, SyncMirrorOptions } from './mirror.js';
export { seedHome } from './seed.js';
export type { SeedFile, SeedHomeOptions, SeedRefusal, SeedResult } from './seed.js';
