import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir } from '@warren/testing';
import { AGENT_SDK_BIN_IN_SANDBOX, BUS_SOCKET_PATH, busEnvironment, startExecution, TaskOutcome } from '@warren/agent-runner';

describe("the task's bus environment", () => {
  it('names the bus socket always, and puts the SDK directory first on PATH only when it exists', async () => {
    const dir = await makeTempDir('warren-bus-env-');
    onTestFinished(() => dir.close());
    expect(busEnvironment({ PATH: '/usr/bin:/bin' }, join(dir.path, 'missing'))).toEqual({ WARREN_BUS_SOCKET: BUS_SOCKET_PATH });
    expect(busEnvironment({ PATH: '/usr/bin', WARREN_BUS_SOCKET: '/tmp/b.sock' }, dir.path)).toEqual({ WARREN_BUS_SOCKET: '/tmp/b.sock', PATH: `${dir.path}:/usr/bin` });
    expect(busEnvironment({ PATH: `${dir.path}:/bin` }, dir.path).PATH).toBe(`${dir.path}:/bin`);
    expect(busEnvironment({}, dir.path).PATH).toBe(`${dir.path}:/usr/local/bin:/usr/bin:/bin`);
    expect(AGENT_SDK_BIN_IN_SANDBOX).toBe('/opt/warren/agent-sdk/bin');
    expect(BUS_SOCKET_PATH).toBe('/run/warren/bus.sock');
  });

  it('a shell task runs warren-bus from the SDK directory and sees WARREN_BUS_SOCKET', async () => {
    const dir = await makeTempDir('warren-bus-env-');
    onTestFinished(() => dir.close());
    const bin = join(dir.path, 'sdk', 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'warren-bus'), '#!/bin/sh\necho "warren-bus $* via $WARREN_BUS_SOCKET"\n');
    chmodSync(join(bin, 'warren-bus'), 0o755);
    const home = join(dir.path, 'home');
    mkdirSync(home);
    const execution = startExecution({
      task: { type: 'task', taskId: 'bus-1', attempt: 1, title: 'bus', body: '', fields: {}, timeoutMs: 30_000, command: 'warren-bus presence' },
      runtime: { kind: 'shell' },
      home,
      env: { PATH: '/usr/bin:/bin', HOME: home },
      agentSdkBinDir: bin,
      onProgress: () => undefined,
    });
    const result = await execution.result;
    expect(result.outcome, result.summary).toBe(TaskOutcome.succeeded);
    expect(result.summary).toContain(`warren-bus presence via ${BUS_SOCKET_PATH}`);
  });
});
