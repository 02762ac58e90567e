import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { spawnSandbox } from '@warren/sandbox';
import { makeTempDir, type TempDir } from '@warren/testing';
import { busEnvironment } from '@warren/agent-runner';
import { serveBusSocket } from '../../../services/supervisor/src/messaging/bus-channel.js';
import { MemoryMessaging } from '../../../services/supervisor/test/messaging-memory.js';
import { cleanup, makeSpec, readLog, requireSandboxHost, tempDir, track } from '../../sandbox/test/helpers.js';
import { buildAgentSdk } from '../src/build.js';
import { AGENT_SDK_BIN_IN_SANDBOX, AGENT_SDK_DIR_IN_SANDBOX, BUS_SOCKET_PATH } from '../src/index.js';

let optDir: TempDir;
let opt: string;
beforeAll(async () => {
  await requireSandboxHost();
  // Built as `npm run build` builds it; bound where the supervisor binds it.
  optDir = await makeTempDir('warren-agent-sdk-opt-');
  opt = optDir.path;
  chmodSync(opt, 0o755);
  await buildAgentSdk({ outDir: opt });
});
afterAll(() => optDir?.close());
afterEach(cleanup);

/**
 * Runs `script` with /bin/sh in a sandbox of a fresh uid, the SDK bound at /opt/warren/agent-sdk and
 * `sockets` at /run/warren, with the task environment the runner gives (warren-bus on PATH,
 * WARREN_BUS_SOCKET). Resolves with the sandbox's output.
 */
async function runInSandbox(script: string, sockets: string, uid?: number): Promise<{ log: string; exit: unknown; uid: number }> {
  const spec = makeSpec(['/bin/sh', '-c', script], uid !== undefined ? { uid } : {});
  const env = { ...spec.env, ...busEnvironment({ PATH: spec.env.PATH }, join(opt, 'bin')) };
  // On the host the check found the built directory; inside, the same directory is at /opt/warren/agent-sdk.
  env.PATH = env.PATH!.replace(join(opt, 'bin'), AGENT_SDK_BIN_IN_SANDBOX);
  const sandbox = track(
    await spawnSandbox({
      ...spec,
      env,
      readOnlyBinds: [
        { source: opt, target: AGENT_SDK_DIR_IN_SANDBOX },
        { source: sockets, target: '/run/warren' },
      ],
      limits: { ...spec.limits, pidsMax: 256, memoryMaxBytes: 1024 * 1024 * 1024 },
    }),
  );
  const exit = await sandbox.exited;
  return { log: readLog(spec), exit, uid: spec.uid };
}

describe('warren-bus inside a real sandbox', () => {
  it("reaches the agent's bus socket as that agent, with the refusals as exit code 1; another uid cannot open the socket", async () => {
    const port = new MemoryMessaging().addAgent('alpha-1').addAgent('beta-1').addAgent('gamma-1');
    port.allow('alpha-1', 'beta-1').allow('beta-1', 'alpha-1');
    await port.send('beta-1', { to: 'alpha-1', body: 'welcome' });
    const sockets = tempDir('warren-agent-sdk-run-');
    chmodSync(sockets, 0o755);
    const spec = makeSpec(['/bin/true']);
    const bus = await serveBusSocket({ port, agent: 'alpha-1', socketPath: join(sockets, 'bus.sock'), owner: { uid: spec.uid, gid: spec.gid } });
    onTestFinished(() => bus.close());

    const run = await runInSandbox(
      [
        'echo "socket=$WARREN_BUS_SOCKET"',
        'echo "which=$(command -v warren-bus)"',
        `warren-bus send beta-1 '{"from":"forged","n":1}'; echo "send=$?"`,
        'warren-bus recv --wait 1000; echo "recv=$?"',
        'warren-bus send gamma-1 hi; echo "denied=$?"',
        'warren-bus presence; echo "presence=$?"',
      ].join('\n'),
      sockets,
      spec.uid,
    );
    expect(run.exit, run.log).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(run.log).toContain(`socket=${BUS_SOCKET_PATH}`);
    expect(run.log).toContain(`which=${AGENT_SDK_BIN_IN_SANDBOX}/warren-bus`);
    expect(run.log).toMatch(/\{"id":"[^"]+"\}\nsend=0/);
    expect(run.log).toContain('"from":"beta-1","body":"welcome"');
    expect(run.log).toContain('recv=0');
    expect(run.log).toMatch(/WARREN_POLICY_DENIED[^\n]*\ndenied=1/);
    expect(run.log).toMatch(/"name":"beta-1"[^\n]*\npresence=0/);
    // The socket is the identity: the body's "from" is only a body.
    expect(port.calls.filter((c) => c.self !== 'beta-1').every((c) => c.self === 'alpha-1')).toBe(true);
    expect(port.inbox('beta-1').at(-1)).toMatchObject({ from: 'alpha-1', body: { from: 'forged', n: 1 } });

    // Another agent (another uid) given the same directory cannot use alpha-1's socket.
    const before = port.calls.length;
    const other = await runInSandbox('warren-bus presence; echo "other=$?"', sockets);
    expect(other.log).toMatch(/WARREN_BUS_UNREACHABLE[^\n]*EACCES|EACCES[^\n]*WARREN_BUS_UNREACHABLE/);
    expect(other.log).toContain('other=1');
    expect(port.calls.length).toBe(before);
  });
});
