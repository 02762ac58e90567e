import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { brokerNamespace } from '@warren/broker';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import type { AgentExit, AgentInstance, AgentRuntime, AgentStartSpec } from '@warren/runtime';
import { parseNodeLabels, resolveConfig } from '../src/config.js';
import { parseTemplate, TemplateError, type AgentTemplate } from '../src/templates.js';
import { nodeJoinOf, placeAgent, PlacementError, PlacementRouter, writeNodeJoinFile, type PlacementNode, type ShippedStartSpec } from '../src/placement/index.js';

const MiB = 1024 * 1024;
const node = (name: string, memoryMiB: number, maxAgents: number, labels: Record<string, string> = {}, state: 'ready' | 'lost' = 'ready'): PlacementNode => ({
  name,
  labels,
  capacity: { memoryBytes: memoryMiB * MiB, maxAgents },
  state,
});

describe('placeAgent', () => {
  const a = node('a', 1024, 4, { zone: 'a' });
  const b = node('b', 2048, 4, { zone: 'b', gpu: '1' });
  const c = node('c', 2048, 1, { zone: 'b' });
  const cases: { name: string; labels?: Record<string, string>; memoryMiB?: number; nodes: PlacementNode[]; placed?: { node: string; memoryMiB: number }[]; expect: string | RegExp }[] = [
    { name: 'most free memory wins', nodes: [a, b], expect: 'b' },
    { name: 'ties go to the smaller name', nodes: [c, b], expect: 'b' },
    { name: 'every label must match exactly', labels: { zone: 'a' }, nodes: [a, b], expect: 'a' },
    { name: 'two labels', labels: { zone: 'b', gpu: '1' }, nodes: [a, b, c], expect: 'b' },
    { name: 'a label value differs', labels: { gpu: '2' }, nodes: [a, b], expect: /no node fits template t with gpu=2 .*a lacks the label gpu=2; b lacks the label gpu=2/ },
    { name: 'placed memory counts', nodes: [a, b], placed: [{ node: 'b', memoryMiB: 1536 }], expect: 'a' },
    { name: 'agent slots count', nodes: [c, a], placed: [{ node: 'c', memoryMiB: 1 }], expect: 'a' },
    { name: 'memory exactly full fits', memoryMiB: 1024, nodes: [a], expect: 'a' },
    { name: 'memory over refuses', memoryMiB: 1025, nodes: [a], expect: /a has 1073741824 of 1073741824 bytes free, 1074790400 asked/ },
    { name: 'no slot left', nodes: [c], placed: [{ node: 'c', memoryMiB: 1 }], expect: /c runs 1 of 1 agents/ },
    { name: 'a lost node takes nothing', nodes: [node('x', 4096, 9, {}, 'lost'), a], expect: 'a' },
    { name: 'only lost nodes', nodes: [node('x', 4096, 9, {}, 'lost')], expect: /x is lost/ },
    { name: 'no nodes', nodes: [], expect: /^no node is ready for template t$/ },
    { name: 'maxAgents 0 takes nothing', nodes: [node('z', 4096, 0)], expect: /z runs 0 of 0 agents/ },
  ];
  for (const t of cases) {
    it(t.name, () => {
      const decision = placeAgent(
        { template: 't', labels: t.labels ?? {}, memoryBytes: (t.memoryMiB ?? 512) * MiB },
        t.nodes,
        (t.placed ?? []).map((p) => ({ node: p.node, memoryBytes: p.memoryMiB * MiB })),
      );
      if (typeof t.expect === 'string') expect(decision).toEqual({ node: t.expect });
      else expect('refusal' in decision ? decision.refusal : decision.node).toMatch(t.expect);
    });
  }
});

const base = `name: t
capabilities: [shell]
runtime: { kind: shell }
`;

describe('template placement', () => {
  it('defaults to nodes without labels', () => {
    expect(parseTemplate(base, 'agents/t.yaml').placement).toEqual({ target: 'nodes', labels: {} });
  });
  it('reads a target and labels', () => {
    const t = parseTemplate(`${base}placement:\n  target: nodes\n  labels: { zone: b, example.com/disk: ssd }\n`, 'agents/t.yaml');
    expect(t.placement).toEqual({ target: 'nodes', labels: { zone: 'b', 'example.com/disk': 'ssd' } });
    expect(parseTemplate(`${base}placement: { target: kubernetes }\n`, 'agents/t.yaml').placement.target).toBe('kubernetes');
  });
  it('names a bad key, target or label with its line', () => {
    expect(() => parseTemplate(`${base}placement:\n  node: a\n`, 'agents/t.yaml')).toThrow(/^agents\/t\.yaml:5: 'placement\.node' is not a template key \(known keys: target, labels\)/);
    expect(() => parseTemplate(`${base}placement:\n  target: cloud\n`, 'agents/t.yaml')).toThrow(/^agents\/t\.yaml:5: 'placement\.target' /);
    expect(() => parseTemplate(`${base}placement:\n  labels: { zone: 'a b' }\n`, 'agents/t.yaml')).toThrow(/'placement\.labels\.zone' must be a label value/);
    expect(() => parseTemplate(`${base}placement:\n  target: kubernetes\n  labels: { zone: a }\n`, 'agents/t.yaml')).toThrow(TemplateError);
  });
});

describe('node options', () => {
  it('parses labels and names a bad pair', () => {
    expect(parseNodeLabels(' zone=b, gpu=1 ,', 'x')).toEqual({ zone: 'b', gpu: '1' });
    expect(parseNodeLabels('', 'x')).toEqual({});
    expect(() => parseNodeLabels('zone', "option 'node-labels'")).toThrow(/option 'node-labels'.*"zone" is not key=value/);
    expect(() => parseNodeLabels('zone=a,zone=b', 'x')).toThrow(/label zone is given twice/);
    expect(() => parseNodeLabels('zone=a b', 'x')).toThrow(/label value "a b"/);
  });
  it('resolves the local node, or none', () => {
    const config = resolveConfig({ nodeName: 'n1', nodeLabels: 'zone=a', nodeMaxAgents: 3, nodeMemory: '1GiB' }, '/runner');
    expect(config.localNode).toEqual({ name: 'n1', labels: { zone: 'a' }, maxAgents: 3, memoryBytes: 1024 * MiB });
    expect(resolveConfig({ localNode: false }, '/runner').localNode).toBeNull();
    expect(resolveConfig({}, '/runner').localNode?.name).toBe('local');
    expect(() => resolveConfig({ nodeName: 'N1' }, '/runner')).toThrow(/option 'nodeName'/);
  });
});

/** A runtime that records its starts and whose instances end when told: placement's routing, without sandboxes. */
function recordingRuntime(label: string) {
  const starts: { spec: AgentStartSpec | ShippedStartSpec; end: (exit: AgentExit) => void }[] = [];
  const runtime = {
    starts,
    label,
    start: (spec: AgentStartSpec) => {
      let end!: (exit: AgentExit) => void;
      const exited = new Promise<AgentExit>((resolve) => (end = resolve));
      starts.push({ spec, end });
      return Promise.resolve({ name: spec.name, pid: 1, unsafe: false, exited, connected: false } as unknown as AgentInstance);
    },
    exec: () => Promise.reject(new Error(`exec on ${label}`)),
    detachStorage: () => Promise.resolve(label === 'local'),
    releaseStorage: () => Promise.resolve(),
    probe: () => Promise.resolve({ driver: label, isolation: 'full' as const, details: {} }),
    reclaim: () => Promise.resolve({ instances: [], storage: [] }),
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  return runtime as typeof runtime & AgentRuntime;
}

describe('PlacementRouter', () => {
  const dirs: string[] = [];
  const dbs: SqliteDatabase[] = [];
  afterEach(() => {
    for (const db of dbs.splice(0)) db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const setup = (templates: AgentTemplate[], withKube = false) => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-placement-'));
    dirs.push(dir);
    const db = openDatabase(join(dir, 'state.db'));
    dbs.push(db);
    const local = recordingRuntime('local');
    const remote = recordingRuntime('n1');
    const kube = recordingRuntime('kube');
    const nodes = [{ view: node('n1', 4096, 8, { zone: 'b' }), runtime: remote as AgentRuntime }];
    const router = new PlacementRouter({
      db,
      log: pino({ level: 'silent' }),
      templates: new Map(templates.map((t) => [t.name, t])),
      local: { view: node('local', 1024, 2, { zone: 'a' }), runtime: local },
      nodes: () => nodes,
      ...(withKube ? { kubernetes: () => Promise.resolve(kube as AgentRuntime) } : {}),
    });
    return { router, local, remote, kube, db, nodes };
  };
  const spec = (t: AgentTemplate, name: string): AgentStartSpec & { homeFiles: () => Promise<{ path: string; contentBase64: string; mode: number }[]>; prepareHome: () => Promise<void> } => ({
    name,
    template: t.name,
    uid: 1900000001,
    gid: 1900000001,
    homeDir: `/home/${name}`,
    resources: { ...t.resources },
    capabilities: [...t.capabilities],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
    homeQuotaBytes: null,
    prepareHome: () => Promise.resolve(),
    homeFiles: () => Promise.resolve([{ path: 'a.txt', contentBase64: 'aGk=', mode: 0o600 }]),
  });
  const events = {} as Parameters<AgentRuntime['start']>[1];

  it('starts an agent where its labels lead, ships its home files there, and remembers the place', async () => {
    const t = parseTemplate(`${base}placement: { labels: { zone: b } }\n`, 'agents/t.yaml');
    const { router, local, remote } = setup([t]);
    await router.start(spec(t, 't-1'), events);
    expect(local.starts).toHaveLength(0);
    expect(remote.starts).toHaveLength(1);
    const shipped = remote.starts[0]!.spec as ShippedStartSpec & { prepareHome?: unknown };
    expect(shipped.homeFiles).toEqual([{ path: 'a.txt', contentBase64: 'aGk=', mode: 0o600 }]);
    expect(shipped.prepareHome).toBeUndefined();
    expect(router.placementOf('t-1')).toMatchObject({ agent: 't-1', target: 'nodes', node: 'n1' });
    await expect(router.exec({ ...spec(t, 't-1') }, ['true'], { stdout: process.stdout, stderr: process.stderr })).rejects.toThrow('exec on n1');
    expect(await router.detachStorage({ name: 't-1' })).toBe(false);
    await router.releaseStorage({ name: 't-1' });
    expect(router.placementOf('t-1')).toBeUndefined();
  });

  it('keeps the local path local (prepareHome, no shipped files) and counts slots until the exit', async () => {
    const t = parseTemplate(`${base}placement: { labels: { zone: a } }\nresources: { memory: 256MiB }\n`, 'agents/t.yaml');
    const { router, local } = setup([t]);
    await router.start(spec(t, 't-1'), events);
    await router.start(spec(t, 't-2'), events);
    const localSpec = local.starts[0]!.spec as AgentStartSpec & { homeFiles?: unknown };
    expect(typeof localSpec.prepareHome).toBe('function');
    expect(localSpec.homeFiles).toBeUndefined();
    expect(router.refusal(t, 't-3')).toMatch(/local runs 2 of 2 agents/);
    await expect(router.start(spec(t, 't-3'), events)).rejects.toThrow(PlacementError);
    local.starts[0]!.end({ kind: 'succeeded', exitCode: 0 });
    await new Promise((resolve) => setImmediate(resolve));
    expect(router.refusal(t, 't-3')).toBeUndefined();
    expect(router.liveAgents().map((a) => a.agent)).toEqual(['t-2']);
  });

  it('sends a kubernetes template to the Kubernetes driver, or refuses it without one', async () => {
    const t = parseTemplate(`${base}placement: { target: kubernetes }\n`, 'agents/t.yaml');
    const without = setup([t]);
    expect(without.router.refusal(t)).toMatch(/placement target kubernetes, and this supervisor has none/);
    await expect(without.router.start(spec(t, 't-1'), events)).rejects.toThrow(PlacementError);
    const withKube = setup([t], true);
    await withKube.router.start(spec(t, 't-1'), events);
    expect(withKube.kube.starts).toHaveLength(1);
    expect(withKube.router.placementOf('t-1')).toMatchObject({ target: 'kubernetes', node: null });
  });

  it('a node that is lost takes no new agent', async () => {
    const t = parseTemplate(`${base}placement: { labels: { zone: b } }\n`, 'agents/t.yaml');
    const { router, nodes } = setup([t]);
    nodes[0] = { ...nodes[0]!, view: { ...nodes[0]!.view, state: 'lost' } };
    expect(router.refusal(t, 't-1')).toMatch(/n1 is lost/);
  });
});

describe('node-join.json', () => {
  it('is written with mode 0600 and replaced at each start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-join-'));
    try {
      mkdirSync(join(dir, 'broker'));
      mkdirSync(join(dir, 'nats', 'auth'), { recursive: true });
      writeFileSync(join(dir, 'broker', 'signing-key'), '0123456789abcdefk3y\n', { mode: 0o600 });
      writeFileSync(join(dir, 'nats', 'auth', 'password'), 'password-of-sixteen\n', { mode: 0o600 });
      const config = resolveConfig({ stateDir: dir }, '/runner');
      const ns = brokerNamespace('w123456');
      const join_ = await nodeJoinOf(config, ns, 'nats://127.0.0.1:4222');
      expect(join_).toEqual({ servers: ['nats://127.0.0.1:4222'], user: 'warren', password: 'password-of-sixteen', signingKey: Buffer.from('0123456789abcdefk3y').toString('hex'), instance: 'w123456', subjectPrefix: ns.subjectPrefix });
      const path = await writeNodeJoinFile(dir, join_);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      await writeNodeJoinFile(dir, { ...join_, password: 'new' });
      expect((JSON.parse(readFileSync(path, 'utf8')) as { password: string }).password).toBe('new');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
