import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, test } from 'vitest';
import * as agentLlm from '@warren/agent-llm';

const packageDir = resolve(import.meta.dirname, '..');

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(agentLlm).sort()).toEqual([
    'AGENT_LLM_BUNDLE_NAME',
    'AGENT_LLM_COMMAND',
    'AGENT_LLM_DIR_IN_SANDBOX',
    'AGENT_LLM_ENV',
    'DEFAULT_MAX_TURNS',
    'HISTORY_MAX_BYTES',
    'HISTORY_MAX_MESSAGES',
    'HISTORY_PATH',
    'ModelCallError',
    'PLACEHOLDER_API_KEY',
    'PathOutsideHomeError',
    'ToolError',
    'agentLlmBundlePath',
    'agentLlmDistDir',
    'loadConfig',
    'loadHistory',
    'readTaskFile',
    'saveHistory',
    'trimHistory',
  ]);
  expect(agentLlm.AGENT_LLM_COMMAND).toEqual(['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs']);
});

test('the bundle is dist/agent-llm.mjs, whether the package is read from its sources or from dist (npm run build)', () => {
  expect(agentLlm.agentLlmDistDir()).toBe(join(packageDir, 'dist'));
  expect(agentLlm.agentLlmBundlePath()).toBe(join(packageDir, 'dist', 'agent-llm.mjs'));
  const built = join(packageDir, 'dist', 'lib', 'index.js');
  expect(existsSync(built), `${built} is missing: run npm run build`).toBe(true);
  const fromDist = execFileSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(built)}).then((m) => process.stdout.write(m.agentLlmBundlePath()))`], { encoding: 'utf8' });
  expect(fromDist).toBe(join(packageDir, 'dist', 'agent-llm.mjs'));
});
