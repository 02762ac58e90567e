/**
 * The built `warren run --until-idle` with a template whose `placement.target` is kubernetes: its
 * agents run as pods of the fake Kubernetes API (KUBECONFIG points the supervisor at it), whose
 * kubelet in this test process runs each pod as a bubblewrap sandbox with the real
 * `warren-pod-agent` bundle; the supervisor's own nats-server issues each agent its NATS user.
 * Every task is done once.
 */
import { appendFileSync, chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { makeTempDir, startFakeKubeApi, startSandboxKubelet, type TempDir } from '@warren/testing';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { buildPodAgent } from '../../packages/kube/src/build.js';
import { requireMachine, startWarren } from '../support/cli.js';
import { countStatus, finish, makeLayout, readAudit, shellTask } from '../durability/support.js';

const IMAGE = 'warren/agent:e2e';
const repo = resolve(import.meta.dirname, '..', '..');

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let image: TempDir;
beforeAll(async () => {
  requireMachine();
  image = await makeTempDir('warren-kube-e2e-image-');
  chmodSync(image.path, 0o755);
  await buildPodAgent(join(image.path, 'warren-pod-agent.mjs'));
  mkdirSync(join(image.path, 'agent-runner'), { recursive: true });
  cpSync(join(repo, 'packages', 'agent-runner', 'dist'), join(image.path, 'agent-runner', 'dist'), { recursive: true });
  return () => image.close();
}, 120_000);

test('a placement.target kubernetes template works the board through pods', async () => {
  const tasks = Object.fromEntries(['p1', 'p2', 'p3'].map((id) => [id, shellTask(id, `echo "done in a pod: $(id -u)"`)]));
  const layout = makeLayout({ tasks, natsUrl: '', maxInstances: 1, wipPerInstance: 1 });
  cleanups.push(() => layout.remove());
  appendFileSync(join(layout.dir, 'agents', `${layout.template}.yaml`), 'placement:\n  target: kubernetes\n');

  const kubelet = await startSandboxKubelet({ stateDir: join(layout.dir, 'kubelet'), images: { [IMAGE]: image.path }, imageMountPath: '/opt/warren' });
  cleanups.push(() => kubelet.close());
  const api = await startFakeKubeApi({ namespaces: ['warren'], onPodCreated: kubelet.onPodCreated, onPodDeleting: kubelet.onPodDeleting });
  cleanups.push(() => api.close());
  const kubeconfig = join(layout.dir, 'kubeconfig.yaml');
  writeFileSync(kubeconfig, api.kubeconfigYaml('warren'), { mode: 0o600 });

  const run = startWarren(layout.args(['run', '--until-idle', '--json', '--http', 'off', '--kube-image', IMAGE, '--kube-namespace', 'warren']), { KUBECONFIG: kubeconfig });
  cleanups.push(() => {
    if (run.child.exitCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
  });
  const end = await finish(run, 300_000);
  expect(end.code, end.stderr.slice(-6000)).toBe(0);
  expect(end.summary?.succeeded.sort()).toEqual(['p1', 'p2', 'p3']);

  // The agents ran as pods, placed on the kubernetes target.
  expect(api.requests.some((r) => r.method === 'POST' && r.url.endsWith('/namespaces/warren/pods'))).toBe(true);
  const db = new Database(join(layout.stateDir, 'warren.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT agent, target FROM agent_placements').all() as { agent: string; target: string }[];
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.target).toBe('kubernetes');
  } finally {
    db.close();
  }
  expect(api.hookErrors).toEqual([]);
  // The supervisor's own nats-server (which issues the agents' NATS users) is gone with the run:
  // the board says what was done, each task once.
  expect(countStatus(layout, 'done')).toBe(3);
  const starts = (await readAudit(layout, 'task.start')).map((r) => r.object).sort();
  expect(starts).toEqual(['task:p1', 'task:p2', 'task:p3']);
}, 600_000);
