import { expect, test } from 'vitest';
import * as workspace from '@warren/workspace';

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(workspace).sort()).toEqual([
    'HOST_GIT_CONFIG',
    'MIRROR_TIMEOUT_MS',
    'RepositoryError',
    'SeedError',
    'mirrorName',
    'redactSource',
    'seedHome',
    'syncMirror',
    'validateSource',
  ]);
});

test('a mirror is named by the first 16 hex digits of the SHA-256 of its source', () => {
  // printf %s /srv/git/app | sha256sum
  expect(workspace.mirrorName('/srv/git/app')).toBe('2dc5dd4f490d83b8');
});
