import { brokerNamespace } from '@warren/broker';
import { describe, expect, it } from 'vitest';
import * as node from '../src/index.js';
import {
  channelEventSchema,
  channelSubjects,
  decodePayload,
  encodePayload,
  nodeCommandSchema,
  nodeHeartbeatSchema,
  nodeSubjects,
  subjectToken,
} from '../src/index.js';

const ns = brokerNamespace('blue');
const usage = { memoryBytes: 1024, pids: 2, cpuMs: 10, pidsRefused: 0, oomKills: 0 };
const startSpec = {
  name: 'shell-1',
  template: 'shell',
  uid: 1_900_000_001,
  gid: 1_900_000_001,
  homeDir: '/var/lib/warren/home/shell/shell-1',
  resources: { memoryMaxBytes: 2 ** 29, pidsMax: 256, cpuWeight: 100, nofile: 1024, fsizeBytes: 2 ** 26, tmpfsBytes: 2 ** 26 },
  capabilities: ['shell'],
  runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 2500 },
  homeQuotaBytes: null,
  homeFiles: [{ path: '.warren/nats.json', contentBase64: 'e30=', mode: 0o600, overwrite: true }],
};

describe('the wire protocol', () => {
  it('exports the names of the shared design', () => {
    for (const name of ['channelSubjects', 'ChannelHub', 'relayChannel', 'NodeDaemon', 'RemoteNodeRuntime', 'NodeRegistry', 'readNodeJoin', 'writeNodeJoin']) {
      expect(typeof (node as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('names subjects under the namespace prefix and reads their tokens', () => {
    expect(channelSubjects(ns, 'shell-1')).toEqual({ ev: 'warren.blue.chan.shell-1.ev', rpc: 'warren.blue.chan.shell-1.rpc', ctl: 'warren.blue.chan.shell-1.ctl' });
    const n1 = nodeSubjects(ns, 'n1');
    expect([n1.hb, n1.cmd, n1.exec('0a1b')]).toEqual(['warren.blue.node.hb.n1', 'warren.blue.node.cmd.n1', 'warren.blue.node.exec.n1.0a1b']);
    expect(nodeSubjects(ns, '*').hb).toBe('warren.blue.node.hb.*');
    expect(() => nodeSubjects(ns, 'N1')).toThrow(/invalid node name/);
    expect(() => n1.exec('a.b')).toThrow(/invalid exec id/);
    expect(subjectToken(ns, 'warren.blue.chan.shell-1.ev', 1)).toBe('shell-1');
    expect(subjectToken(ns, 'warren.green.chan.shell-1.ev', 1)).toBeUndefined();
  });

  it('accepts each valid payload and names the subject and field of an invalid one', () => {
    const heartbeat = {
      node: 'n1',
      version: '1',
      startedMs: 1,
      seq: 3,
      labels: { zone: 'b' },
      capacity: { cpus: 2, memoryBytes: 2 ** 31, maxAgents: 8 },
      instances: [{ agent: 'shell-1', instance: '0123456789abcdef', pid: 42, connected: true, usage }],
      driver: null,
    };
    expect(decodePayload(nodeHeartbeatSchema, 'hb', encodePayload(heartbeat))).toEqual({ ok: true, value: heartbeat });
    expect(decodePayload(nodeCommandSchema, 'cmd', encodePayload({ op: 'start', instance: '0123456789abcdef', spec: startSpec })).ok).toBe(true);
    expect(decodePayload(channelEventSchema, 'ev', encodePayload({ instance: '0123456789abcdef', seq: 0, type: 'exited', exit: { kind: 'lost', detail: 'n1 silent' } })).ok).toBe(true);

    const badExit = decodePayload(channelEventSchema, 'warren.blue.chan.shell-1.ev', encodePayload({ instance: '0123456789abcdef', seq: 0, type: 'exited', exit: { kind: 'vanished' } }));
    expect(badExit).toMatchObject({ ok: false, error: expect.stringMatching(/^warren\.blue\.chan\.shell-1\.ev: invalid payload: exit/) as unknown });
    const escaping = decodePayload(nodeCommandSchema, 'cmd', encodePayload({ op: 'start', instance: '0123456789abcdef', spec: { ...startSpec, homeFiles: [{ path: '../etc/passwd', contentBase64: '', mode: 0o600 }] } }));
    expect(escaping).toMatchObject({ ok: false, error: expect.stringContaining('spec.homeFiles.0.path') as unknown });
    const setuid = decodePayload(nodeCommandSchema, 'cmd', encodePayload({ op: 'start', instance: '0123456789abcdef', spec: { ...startSpec, homeFiles: [{ path: 'x', contentBase64: '', mode: 0o4755 }] } }));
    expect(setuid.ok).toBe(false);
    expect(decodePayload(nodeCommandSchema, 'cmd', new TextEncoder().encode('{'))).toMatchObject({ ok: false, error: expect.stringContaining('cmd: payload is not JSON') as unknown });
    expect(decodePayload(nodeCommandSchema, 'cmd', encodePayload({ op: 'exec', execId: 'x1', agent: startSpec, argv: [] })).ok).toBe(false);
  });
});
