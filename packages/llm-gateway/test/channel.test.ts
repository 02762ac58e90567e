import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import type { AgentStartSpec, ChannelService } from '@warren/runtime';
import { makeTempDir } from '@warren/testing';
import { llmChannelService, type AgentLlmAccess } from '@warren/llm-gateway';
import { startGateway } from './support.js';

test("as the runtime's channel service: llm.sock owned by the agent, or nothing for an agent without a gateway", async () => {
  const gw = await startGateway();
  const dir = await makeTempDir('warren-llm-channel-');
  onTestFinished(() => dir.close());
  const access = (name: string): AgentLlmAccess => ({ agent: name, template: 'coder', providers: ['openai'], budgets: { template: {}, agent: {} }, currentTask: () => null });
  // The type the bubblewrap runtime takes: it must accept the adapter as it is.
  const service: ChannelService = llmChannelService<AgentStartSpec>(gw.gateway, (spec) => (spec.name === 'shell-1' ? null : access(spec.name)));
  expect(service.socketName).toBe('llm.sock');
  const spec = (name: string, uid: number): AgentStartSpec => ({ name, uid, gid: uid + 1 }) as unknown as AgentStartSpec;
  const served = await service.serve(spec('coder-2', 23_456), join(dir.path, service.socketName));
  expect(served).not.toBeNull();
  const info = await stat(join(dir.path, 'llm.sock'));
  expect([info.uid, info.gid, info.mode & 0o777]).toEqual([23_456, 23_457, 0o660]);
  await served!.close();
  expect(await service.serve(spec('shell-1', 23_458), join(dir.path, 'other.sock'))).toBeNull();
  await expect(stat(join(dir.path, 'other.sock'))).rejects.toThrow(/ENOENT/);
});
