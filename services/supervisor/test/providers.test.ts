import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir } from '@warren/testing';
import { loadProviders, parseProvider, ProviderFileError } from '../src/providers.js';

const good = `name: anthropic
baseUrl: https://api.anthropic.com/
wire: anthropic-messages
key: { secret: ANTHROPIC_API_KEY }
models: { sonnet: claude-sonnet-4-5 }
prices: { claude-sonnet-4-5: { input: 3, output: 15 } }
`;

describe('provider files', () => {
  it('parses a provider, trimming the base URL', () => {
    const p = parseProvider(good, 'providers/anthropic.yaml');
    expect(p).toMatchObject({ name: 'anthropic', baseUrl: 'https://api.anthropic.com', wireApi: 'anthropic-messages', key: { secret: 'ANTHROPIC_API_KEY' }, models: { sonnet: 'claude-sonnet-4-5' } });
    expect(p.prices['claude-sonnet-4-5']).toEqual({ input: 3, output: 15 });
  });

  it('names the file, line and key of a mistake', () => {
    const cases: [string, RegExp][] = [
      [good.replace('anthropic-messages', 'grpc'), /anthropic\.yaml:3: 'wire'/],
      [good.replace('https://api.anthropic.com/', 'ftp://x'), /anthropic\.yaml:2: 'baseUrl' must be an http or https URL/],
      [good.replace('{ secret: ANTHROPIC_API_KEY }', '{ secret: lower }'), /anthropic\.yaml:4: 'key/],
      [`${good}temperature: 1\n`, /anthropic\.yaml:7: 'temperature' is not a provider key/],
      ['name: [', /is not valid YAML/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseProvider(text, 'providers/anthropic.yaml')).toThrow(message);
    }
  });

  it('loads a folder: a bad file is reported and the others load; no folder holds none', async () => {
    await using dir = await makeTempDir('warren-providers-');
    expect((await loadProviders(join(dir.path, 'none'))).providers.size).toBe(0);
    const folder = join(dir.path, 'providers');
    mkdirSync(folder);
    writeFileSync(join(folder, 'a.yaml'), good);
    writeFileSync(join(folder, 'b.yaml'), good.replace('wire: anthropic-messages', 'wire: nope'));
    writeFileSync(join(folder, 'c.yaml'), good);
    const set = await loadProviders(folder, dir.path);
    expect([...set.providers.keys()]).toEqual(['anthropic']);
    expect(set.errors.map((e) => e.message)).toEqual([expect.stringMatching(/^providers\/b\.yaml:3: 'wire'/), expect.stringMatching(/^providers\/c\.yaml:1: 'name' 'anthropic' is already defined by providers\/a\.yaml/)]);
    expect(set.errors[0]).toBeInstanceOf(ProviderFileError);
  });
});
