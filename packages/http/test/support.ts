/**
 * Test ports over real parts: a SQLite state database in a temp directory, the registry and audit
 * trail over it, the repository's own policy loaded by @warren/policy, and an authorizer that
 * decides and audits each request as the supervisor's does. Only what the supervisor computes from
 * its live world (agents' live fields, the board, logs) is kept in plain data the tests fill.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openAudit, verifyAuditTrail, type AuditEntry, type AuditRecord, type AuditTrail } from '@warren/audit';
import { WarrenError } from '@warren/core';
import { loadPolicy, type PolicyEnforcer } from '@warren/policy';
import { openRegistry, taskUsage, usageReport, type Registry } from '@warren/registry';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { eventOfRow, openTokenStore, readLogRange, type AgentItem, type BoardView, type EventPayload, type HttpPorts, type TaskDraft, type TemplateItem, type TokenStore } from '@warren/http';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const POLICIES = join(repoRoot, 'policies');

export interface TestPorts extends HttpPorts {
  readonly dir: string;
  readonly db: SqliteDatabase;
  readonly audit: AuditTrail;
  readonly policy: PolicyEnforcer;
  /** Agent items `agents()` returns. */
  agentItems: AgentItem[];
  templateItems: TemplateItem[];
  /** Appends an audit row and hands its event to the subscribers, as the supervisor's event bus does. */
  emit(entry: AuditEntry): AuditRecord;
  /** Times `requestTick` was called. */
  readonly ticks: number;
  /** Subscribers now. */
  readonly subscribers: number;
  /** Closes the database and removes the directory. Idempotent. */
  close(): void;
}

/** A ready task row. */
/** A task row over a ready task's defaults: the registry's own test helper. */
export { taskRow } from '../../registry/test/support.js';

export function agentItem(name: string, fields: Partial<AgentItem> = {}): AgentItem {
  return {
    name,
    template: name.replace(/-\d+$/, ''),
    uid: 1_900_000_001,
    gid: 1_900_000_001,
    home: `/tmp/home/${name}`,
    state: 'running',
    pid: 4242,
    startedMs: 1_000,
    stoppedMs: null,
    lastExit: null,
    tasksDone: 0,
    capabilities: ['shell'],
    wip: 1,
    live: { status: 'idle', load: 0, lastHeartbeatMs: 2_000, uptimeMs: 1_000, cpuMs: 12, memoryBytes: 1_048_576, memoryLimitBytes: 268_435_456, pids: 2 },
    ...fields,
  };
}

/** Opens test ports in a fresh temp directory. */
export async function openTestPorts(): Promise<TestPorts> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-http-'));
  const db = openDatabase(join(dir, 'warren.db'));
  const audit = openAudit(db);
  const registry: Registry = openRegistry(db, { stateDir: dir, audit });
  const tokens: TokenStore = openTokenStore(db);
  const policy = await loadPolicy({ modelPath: join(POLICIES, 'model.conf'), policyPath: join(POLICIES, 'policy.csv') });
  const listeners = new Set<(event: EventPayload) => void>();
  const boardDir = join(dir, 'kanban');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(boardDir, { recursive: true });
  let ticks = 0;
  let closed = false;

  const emit = (entry: AuditEntry): AuditRecord => {
    const row = audit.append(entry);
    const event = eventOfRow(row);
    for (const listener of [...listeners]) listener(event);
    return row;
  };

  const ports: TestPorts = {
    dir,
    db,
    audit,
    policy,
    registry,
    tokens,
    instance: 'test',
    version: '0.1.0',
    startedMs: 1_000,
    agentItems: [],
    templateItems: [
      { name: 'shell', capabilities: ['shell'], wip: 1, minInstances: 0, maxInstances: 4, warm: 0, resources: { memoryMaxBytes: 268_435_456 }, instances: 1, errors: [] },
    ],
    emit,
    get ticks() {
      return ticks;
    },
    get subscribers() {
      return listeners.size;
    },
    authorizer: {
      authorize({ principal, object, action }) {
        const explained = policy.explain(principal, object, action);
        emit({ actor: principal, action: 'policy.decide', object, decision: explained.allowed ? 'allow' : 'deny', details: { sub: principal, act: action, rule: explained.rule } });
        return { allowed: explained.allowed, principal, object, action, rule: explained.rule };
      },
      grantRole: (principal, role) => policy.addRoleForSubject(principal, role),
      dropPrincipal: (principal) => policy.removeSubject(principal),
    },
    agents() {
      return ports.agentItems;
    },
    accounts() {
      return ports.agentItems.map((a) => ({ name: a.name, template: a.template, uid: a.uid, gid: a.gid, groups: [], home: a.home, createdMs: 1_000 }));
    },
    templates() {
      return ports.templateItems;
    },
    board(): Promise<BoardView> {
      const tasks = registry.tasks();
      return Promise.resolve({
        format: 'warren',
        columns: [
          { name: 'ready', wip: null, count: tasks.filter((t) => t.state === 'ready').length, over: false },
          { name: 'doing', wip: 2, count: tasks.filter((t) => t.state === 'running').length, over: false },
        ],
        held: [],
        cards: tasks.map((t) => ({
          id: t.id,
          title: `Title of ${t.id}`,
          column: t.state === 'running' ? 'doing' : 'ready',
          priority: null,
          capabilities: [],
          dependsOn: [],
          state: t.state,
          agent: t.agent,
          queuePosition: t.queuePosition,
          queueReason: t.queueReason,
          path: t.path,
        })),
      });
    },
    taskExtras(id) {
      return { title: `Title of ${id}`, column: 'ready', traceId: null, output: '' };
    },
    createTask(draft: TaskDraft) {
      const id = draft.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
      const path = `${id}.md`;
      if (id === '') return Promise.reject(new WarrenError('WARREN_TASK_INVALID', "'title' has no letters or digits to make an id of"));
      if (existsSync(join(boardDir, path))) return Promise.reject(new WarrenError('WARREN_TASK_EXISTS', `task '${id}' exists (${path})`));
      writeFileSync(join(boardDir, path), `---\nid: ${id}\ntitle: ${draft.title}\n---\n${draft.body ?? ''}\n`);
      return Promise.resolve({ id, path });
    },
    agentLog(name, range) {
      if (!ports.agentItems.some((a) => a.name === name)) return undefined;
      return readLogRange(join(dir, 'logs', `${name}.log`), range);
    },
    messages(filter) {
      return registry.messages(filter);
    },
    analytics(filter) {
      return registry.analyticsReport({ ...filter, nowMs: Date.now(), capabilitiesOf: () => ['shell'] });
    },
    verifyAudit() {
      return Promise.resolve(verifyAuditTrail(registry.db));
    },
    usage(request) {
      return usageReport(registry.db, request);
    },
    taskUsage(id) {
      return taskUsage(registry.db, id);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    metrics() {
      return Promise.resolve({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: `# TYPE warren_audit_rows gauge\nwarren_audit_rows ${audit.lastSeq()}\n` });
    },
    requestTick() {
      ticks += 1;
    },
    close() {
      if (closed) return;
      closed = true;
      listeners.clear();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return ports;
}

/** The log file `agentLog` reads for `name`. */
export function logPath(ports: TestPorts, name: string): string {
  return join(ports.dir, 'logs', `${name}.log`);
}
