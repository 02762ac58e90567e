import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, resolve } from 'node:path';
import { expect, test } from 'vitest';
import * as sdk from '@warren/agent-sdk';

const packageDir = resolve(import.meta.dirname, '..');

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(sdk).sort()).toEqual([
    'AGENT_SDK_BIN_IN_SANDBOX',
    'AGENT_SDK_DIR_IN_SANDBOX',
    'BUS_SOCKET_ENV',
    'BUS_SOCKET_PATH',
    'BusError',
    'EXIT_OK',
    'EXIT_REFUSED',
    'EXIT_USAGE',
    'TOPIC_NAME',
    'USAGE',
    'WARREN_BUS_BUNDLE_NAME',
    'agentSdkDistDir',
    'connectBus',
    'parseBody',
    'runCli',
    'warrenBusBundlePath',
  ]);
  expect(sdk.BUS_SOCKET_PATH).toBe('/run/warren/bus.sock');
  expect(sdk.AGENT_SDK_BIN_IN_SANDBOX).toBe('/opt/warren/agent-sdk/bin');
});

test('the sources of the client and the command import only Node built-ins and each other', () => {
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const foreign: string[] = [];
  for (const file of readdirSync(join(packageDir, 'src'))) {
    // The build script runs on the host, not in the sandbox.
    if (file === 'build.ts') continue;
    const text = readFileSync(join(packageDir, 'src', file), 'utf8');
    for (const [, from] of text.matchAll(/^(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
      if (!builtins.has(from!) && !from!.startsWith('./')) foreign.push(`${file}: ${from}`);
    }
  }
  expect(foreign).toEqual([]);
});

test('the bundle and the wrapper are under dist/, whether the package is read from its sources or from dist (npm run build)', () => {
  expect(sdk.agentSdkDistDir()).toBe(join(packageDir, 'dist'));
  expect(sdk.warrenBusBundlePath()).toBe(join(packageDir, 'dist', 'warren-bus.mjs'));
  const built = join(packageDir, 'dist', 'lib', 'index.js');
  expect(existsSync(built), `${built} is missing: run npm run build`).toBe(true);
  const fromDist = execFileSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(built)}).then((m) => process.stdout.write(m.warrenBusBundlePath()))`], { encoding: 'utf8' });
  expect(fromDist).toBe(join(packageDir, 'dist', 'warren-bus.mjs'));
  expect(existsSync(join(packageDir, 'dist', 'bin', 'warren-bus')), 'dist/bin/warren-bus is missing: run npm run build').toBe(true);
});
