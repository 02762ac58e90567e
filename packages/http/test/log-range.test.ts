import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { readLogRange } from '@warren/http';

function file(content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-log-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.log');
  writeFileSync(path, content);
  return path;
}

test('a log is tailed, read on from an offset, and read again from its tail after it was truncated', () => {
  const path = file('0123456789');
  expect(readLogRange(path, { limit: 4 })).toEqual({ text: '6789', next: 10, size: 10 });
  expect(readLogRange(path, { after: 2, limit: 5 })).toEqual({ text: '23456', next: 7, size: 10 });
  expect(readLogRange(path, { after: 2, limit: 1 })).toEqual({ text: '2345', next: 6, size: 10 });
  expect(readLogRange(path, { after: 10, limit: 4 })).toEqual({ text: '', next: 10, size: 10 });
  expect(readLogRange(path, { after: 50, limit: 4 })).toEqual({ text: '6789', next: 10, size: 10 });
  expect(readLogRange(join(path, '..', 'missing.log'), { limit: 10 })).toEqual({ text: '', next: 0, size: 0 });
});

test('a range never cuts a UTF-8 character: the cut one is skipped at the start and left for the next read at the end', () => {
  const text = 'aé€😀z';
  const path = file(text);
  const size = Buffer.byteLength(text);
  let after = 0;
  let joined = '';
  for (let i = 0; i < 20 && after < size; i += 1) {
    const chunk = readLogRange(path, { after, limit: 4 });
    joined += chunk.text;
    expect(chunk.next).toBeGreaterThan(after);
    after = chunk.next;
  }
  expect(joined).toBe(text);
  expect(readLogRange(path, { after: 6, limit: 1 })).toEqual({ text: '😀', next: 10, size });
  expect(readLogRange(path, { limit: 5 }).text).toBe('😀z');
  expect(readLogRange(path, { limit: 6 }).text).toBe('😀z');
});
