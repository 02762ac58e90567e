/**
 * Per-agent NATS users for agents that connect to NATS directly: each agent gets an NKey pair when
 * its home is prepared for a start (a fresh pair at every start: the seed is written to the agent's
 * `~/.warren/nats.json`, mode 0400, its uid; the supervisor keeps only the public key, in table
 * `agent_nats_keys`), and the supervisor's nats-server holds each agent to publish and subscribe
 * allow-lists computed from the policy (`agentNatsPermissions` of `@warren/broker`). The users are
 * computed again when agents come or go and when the policy reloads, and given to the server
 * (`EmbeddedNatsServer.setUsers`, which reloads it in place: live connections lose what they lost)
 * only when they changed; each change is the event `broker.users`.
 *
 * Only with the supervisor's own nats-server (`ctx.nats`); with `NATS_URL` it is off (said once in
 * the log), since the users of an external server are not the supervisor's to write.
 */
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { WarrenError } from '@warren/core';
import { agentNatsConfig, agentNatsPermissions, createAgentNkey, type AgentNatsConfig, type AgentNatsGrants, type NatsAgentUser } from '@warren/broker';
import type { SqliteDatabase } from '@warren/store';
import type { PolicyEnforcer } from '@warren/policy';
import type { SupervisorContext } from '../context.js';
import { AGENT_NAME, TOPIC_NAME } from './service.js';

/** The file in the agent's home that tells it how to connect to NATS as itself. */
export const AGENT_NATS_FILE = '.warren/nats.json';

/**
 * Makes table `agent_nats_keys (agent TEXT PRIMARY KEY, public_key TEXT NOT NULL, issued_ms INTEGER NOT NULL)`
 * if missing: the public NKey (`U…`) of each agent's current pair. Idempotent.
 */
export function migrateAgentNatsKeys(db: SqliteDatabase): void {
  db.exec(`CREATE TABLE IF NOT EXISTS agent_nats_keys (
    agent TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    issued_ms INTEGER NOT NULL
  )`);
}

/**
 * The topic names the policy text names in its objects (`topic:<name>`); a wildcard (`topic:*`,
 * `topic:ci-*`) names none. Sorted, each once.
 */
export function policyTopics(policyText: string): string[] {
  return policyNames(policyText, 'topic:', TOPIC_NAME);
}

/** The agent names the policy text names in its objects (`agent:<name>`), wildcards aside. Sorted, each once. */
export function policyAgents(policyText: string): string[] {
  return policyNames(policyText, 'agent:', AGENT_NAME);
}

function policyNames(policyText: string, prefix: string, pattern: RegExp): string[] {
  const topics = new Set<string>();
  for (const line of policyText.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    for (const field of trimmed.split(',')) {
      const value = field.trim();
      if (!value.startsWith(prefix)) continue;
      const name = value.slice(prefix.length);
      if (pattern.test(name)) topics.add(name);
    }
  }
  return [...topics].sort();
}

/** A name no agent and no topic can have (`~` is outside both alphabets): asking the policy about it tells whether a wildcard rule applies. */
const PROBE = '~probe';

/**
 * What the policy grants `agent` on the broker (unaudited: these are allow-lists, not actions):
 * the agents among `agents` it may message, the topics among `topics` it may publish to and
 * subscribe to. A list is `'*'` when a wildcard rule allows a name no agent or topic has and every
 * named one is allowed too (so a `deny` for one of them keeps the list explicit): give `agents`
 * the agents that exist and those the policy names.
 */
export function agentNatsGrants(policy: { explain(sub: string, obj: string, act: string): { readonly allowed: boolean } }, agent: string, agents: readonly string[], topics: readonly string[]): AgentNatsGrants {
  const grant = (prefix: string, names: readonly string[], action: string): readonly string[] | '*' => {
    const allowed = names.filter((name) => policy.explain(agent, `${prefix}${name}`, action).allowed);
    const wildcard = policy.explain(agent, `${prefix}${PROBE}`, action).allowed;
    return wildcard && allowed.length === names.length ? '*' : allowed;
  };
  return {
    messageTo: grant('agent:', agents.filter((a) => a !== agent), 'message'),
    publishTopics: grant('topic:', topics, 'publish'),
    subscribeTopics: grant('topic:', topics, 'subscribe'),
  };
}

/**
 * {@link agentNatsGrants} of each of `agents`, by agent, with the policy asked once per decision
 * class (`PolicyEnforcer.decisionClass`: agents whose decisions are all the same, e.g. those of
 * one template that no rule names) rather than once per agent: O(classes × (candidates + topics))
 * decisions instead of O(agents × candidates). An agent whose class is undefined (a policy that
 * is not compiled) is asked about on its own. Equal to {@link agentNatsGrants} for each agent:
 * a member's list is its class's minus itself, and `'*'` when the wildcard is allowed and the
 * class is denied no candidate but (maybe) the member itself.
 */
export function agentNatsGrantsByClass(
  policy: Pick<PolicyEnforcer, 'enforce' | 'decisionClass'>,
  agents: readonly string[],
  candidates: readonly string[],
  topics: readonly string[],
): Map<string, AgentNatsGrants> {
  const byEnforce = { explain: (sub: string, obj: string, act: string) => ({ allowed: policy.enforce(sub, obj, act) }) };
  const topicGrant = (agent: string, action: string): readonly string[] | '*' => {
    const allowed = topics.filter((topic) => policy.enforce(agent, `topic:${topic}`, action));
    return policy.enforce(agent, `topic:${PROBE}`, action) && allowed.length === topics.length ? '*' : allowed;
  };
  interface ClassGrants {
    readonly denied: ReadonlySet<string>;
    readonly wildcard: boolean;
    readonly publishTopics: readonly string[] | '*';
    readonly subscribeTopics: readonly string[] | '*';
  }
  const classes = new Map<string, ClassGrants>();
  const grants = new Map<string, AgentNatsGrants>();
  for (const agent of agents) {
    const key = policy.decisionClass(agent);
    if (key === undefined) {
      grants.set(agent, agentNatsGrants(byEnforce, agent, candidates, topics));
      continue;
    }
    let found = classes.get(key);
    if (found === undefined) {
      found = {
        denied: new Set(candidates.filter((c) => !policy.enforce(agent, `agent:${c}`, 'message'))),
        wildcard: policy.enforce(agent, `agent:${PROBE}`, 'message'),
        publishTopics: topicGrant(agent, 'publish'),
        subscribeTopics: topicGrant(agent, 'subscribe'),
      };
      classes.set(key, found);
    }
    const { denied, wildcard } = found;
    const all = wildcard && (denied.size === 0 || (denied.size === 1 && denied.has(agent)));
    grants.set(agent, {
      messageTo: all ? '*' : candidates.filter((c) => c !== agent && !denied.has(c)),
      publishTopics: found.publishTopics,
      subscribeTopics: found.subscribeTopics,
    });
  }
  return grants;
}

/**
 * Writes `config` to `<homeDir>/.warren/nats.json` as the agent (`uid`, `gid`), mode 0400, through
 * a temporary file renamed over it. The home and `.warren` must be real directories (a symlink is
 * refused, so an agent cannot point the write elsewhere), `.warren` owned by the agent or root.
 * @throws {WarrenError} `WARREN_NATS_CREDENTIALS` naming the path when it cannot be written.
 */
export function writeAgentNatsFile(homeDir: string, uid: number, gid: number, config: AgentNatsConfig): void {
  const shown = join(homeDir, AGENT_NATS_FILE);
  const fail = (what: string, error?: unknown): never => {
    throw new WarrenError('WARREN_NATS_CREDENTIALS', `${shown}: ${what}${error === undefined ? '' : `: ${(error as Error).message}`}`, { cause: error });
  };
  const dirFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
  const fds: number[] = [];
  try {
    let homeFd = -1;
    try {
      homeFd = openSync(homeDir, dirFlags);
    } catch (error) {
      fail('the home cannot be opened as a directory', error);
    }
    fds.push(homeFd);
    const warrenPath = `/proc/self/fd/${homeFd}/.warren`;
    try {
      mkdirSync(warrenPath, { mode: 0o700 });
      const made = openSync(warrenPath, dirFlags);
      fchownSync(made, uid, gid);
      closeSync(made);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') fail('.warren cannot be made', error);
    }
    let warrenFd = -1;
    try {
      warrenFd = openSync(warrenPath, dirFlags);
    } catch (error) {
      fail('.warren is not a real directory: refused', error);
    }
    fds.push(warrenFd);
    const owner = fstatSync(warrenFd).uid;
    if (owner !== uid && owner !== 0) fail(`.warren is owned by uid ${owner}, neither the agent (uid ${uid}) nor root: refused`);
    const dir = `/proc/self/fd/${warrenFd}`;
    const temp = `${dir}/.nats.json.${randomBytes(8).toString('hex')}`;
    let fd = -1;
    try {
      fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o400);
    } catch (error) {
      fail('cannot be created', error);
    }
    try {
      fchmodSync(fd, 0o400);
      fchownSync(fd, uid, gid);
      const bytes = Buffer.from(`${JSON.stringify(config)}\n`, 'utf8');
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      bytes.fill(0);
      fsyncSync(fd);
      closeSync(fd);
      fd = -1;
      renameSync(temp, `${dir}/nats.json`);
    } catch (error) {
      if (fd >= 0) closeSync(fd);
      try {
        unlinkSync(temp);
      } catch {
        // renamed already
      }
      fail('cannot be written', error);
    }
  } finally {
    for (const fd of fds.reverse()) closeSync(fd);
  }
}

/** The per-agent NATS users of one supervisor; see the module comment. */
export class AgentNatsUsers {
  private lastUsers: string | undefined;
  private lastPermissions = new Map<string, string>();
  private syncing: Promise<void> = Promise.resolve();
  /** The sync waiting for the one in progress to end, if any; it has not read anything yet. */
  private queued: Promise<void> | undefined;
  /** The accounts' names (`AccountStore.namesKey`) when the last sync started. */
  private lastAgents = '';
  private lastLookMs = 0;
  /** When the last sync ended (ms since the epoch), how long it took (ms, the server's reload included) and the users it gave. */
  private lastSyncEndMs = Number.NEGATIVE_INFINITY;
  private lastSyncMs = 0;
  private lastUserCount = 0;

  private constructor(private readonly ctx: SupervisorContext) {
    migrateAgentNatsKeys(ctx.db);
  }

  /**
   * The per-agent users of `ctx`'s supervisor, made at the first call; undefined (said once in the
   * log) when the supervisor uses an external NATS server.
   */
  static of(ctx: SupervisorContext): AgentNatsUsers | undefined {
    let users = made.get(ctx);
    if (users === undefined && !made.has(ctx)) {
      users = ctx.nats === undefined ? undefined : new AgentNatsUsers(ctx);
      made.set(ctx, users);
      if (users === undefined) ctx.log.info({ nats: 'external' }, 'per-agent NATS users are off: the NATS server is external (NATS_URL), its users are not the supervisor\'s to write');
    }
    return users;
  }

  /**
   * Gives agent `name` a fresh NKey pair: keeps its public key, writes its `~/.warren/nats.json`
   * (home `homeDir`, as `uid`:`gid`) and updates the server's users, so the previous seed no longer
   * connects, and makes its inbox consumer (which the agent may pull from but not make). Called
   * while its home is prepared for a start.
   * @throws {WarrenError} `WARREN_NATS_CREDENTIALS` when the file cannot be written; what
   *   {@link sync} throws.
   */
  async issue(name: string, homeDir: string, uid: number, gid: number): Promise<void> {
    const nats = this.ctx.nats!;
    const key = createAgentNkey();
    writeAgentNatsFile(homeDir, uid, gid, agentNatsConfig(this.ctx.broker.namespace, name, [nats.url], key.seed));
    this.ctx.db
      .prepare('INSERT INTO agent_nats_keys (agent, public_key, issued_ms) VALUES (?, ?, ?) ON CONFLICT (agent) DO UPDATE SET public_key = excluded.public_key, issued_ms = excluded.issued_ms')
      .run(name, key.publicKey, Date.now());
    await this.sync();
    // Agents may not make consumers: the supervisor makes the agent's inbox consumer (`msg-<name>`)
    // for it by pulling once without waiting; a message that came back is handed back at once.
    // The broker rides the moment the server's reload (after the sync) leaves JetStream unanswered.
    for (const delivery of await this.ctx.broker.fetchMessages(name, { max: 1, expiresMs: 0 })) delivery.nak();
  }

  /**
   * Computes every agent's user from the policy and gives the server the list when it changed
   * (event `broker.users` with the count and the agents whose permissions changed). Keys of agents
   * whose account is gone are dropped. Calls run one at a time; calls made while one waits its
   * turn share it (it starts after them all, so it includes what each of them wrote). After a
   * sync of {@link SYNC_GATHER_MIN_USERS} users or more that took {@link SYNC_SLOW_MS} or more
   * (the server's reload costs O(users)), the next one starts no sooner than {@link syncGatherMs}
   * after it ended, so that agents starting in a burst share reloads and the syncs take at most
   * about a third of the time; one asked for after a quiet spell (an agent starting alone), after
   * a quick sync or with few users starts at once.
   * @throws {NatsServerError} if the server refused the users or did not reload.
   */
  sync(): Promise<void> {
    // Calls made while a sync waits for the one before it share it: the waiting sync reads the
    // keys and the policy only when it starts, so it covers them all (a burst of starts reloads
    // the server a few times rather than once per agent).
    if (this.queued) return this.queued;
    const run = this.syncing.then(async () => {
      const waitMs = this.lastSyncEndMs + syncGatherMs(this.lastSyncMs, this.lastUserCount) - Date.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      this.queued = undefined;
      const startMs = Date.now();
      try {
        await this.syncOnce();
      } finally {
        this.lastSyncEndMs = Date.now();
        this.lastSyncMs = this.lastSyncEndMs - startMs;
      }
    });
    this.queued = run;
    this.syncing = run.catch(() => undefined);
    return run;
  }

  /**
   * {@link sync} when the set of agent accounts changed since the last one; looked at most once a
   * second (it is called every tick). Failures are logged.
   */
  syncIfAgentsChanged(nowMs = Date.now()): void {
    if (nowMs - this.lastLookMs < 1_000) return;
    this.lastLookMs = nowMs;
    if (this.ctx.accounts.namesKey() === this.lastAgents) return;
    this.sync().catch((error: unknown) => this.ctx.log.error({ err: error }, 'cannot update the per-agent NATS users'));
  }

  private async syncOnce(): Promise<void> {
    const { ctx } = this;
    this.lastAgents = this.ctx.accounts.namesKey();
    const accounts = ctx.accounts.list().map((a) => a.name).filter((n) => AGENT_NAME.test(n)).sort();
    const known = new Set(accounts);
    const rows = ctx.db.prepare('SELECT agent, public_key AS publicKey FROM agent_nats_keys ORDER BY agent').all() as { agent: string; publicKey: string }[];
    for (const row of rows) if (!known.has(row.agent)) ctx.db.prepare('DELETE FROM agent_nats_keys WHERE agent = ?').run(row.agent);
    let policyText = '';
    try {
      policyText = readFileSync(join(ctx.config.policiesDir, 'policy.csv'), 'utf8');
    } catch (error) {
      ctx.log.warn({ err: error }, 'cannot read the policy file for the topics it names; agents get no topics on NATS');
    }
    const topics = policyTopics(policyText);
    const candidates = [...new Set([...accounts, ...policyAgents(policyText)])].sort();
    const users: NatsAgentUser[] = [];
    const permissions = new Map<string, string>();
    const live = rows.filter((row) => known.has(row.agent));
    const grants = agentNatsGrantsByClass(ctx.policy, live.map((row) => row.agent), candidates, topics);
    for (const row of live) {
      const granted = agentNatsPermissions(ctx.broker.namespace, row.agent, grants.get(row.agent)!, { runner: runsInPod(ctx, row.agent) });
      users.push({ nkey: row.publicKey, permissions: granted });
      permissions.set(row.agent, JSON.stringify({ nkey: row.publicKey, granted }));
    }
    this.lastUserCount = users.length;
    const text = JSON.stringify(users);
    if (text === this.lastUsers) return;
    await ctx.nats!.setUsers(users);
    const changed = [...new Set([...permissions.keys(), ...this.lastPermissions.keys()])].filter((a) => permissions.get(a) !== this.lastPermissions.get(a)).sort();
    this.lastUsers = text;
    this.lastPermissions = permissions;
    ctx.emit({ actor: 'supervisor', action: 'broker.users', object: 'supervisor', details: { count: users.length, changed } });
  }
}

const made = new WeakMap<SupervisorContext, AgentNatsUsers | undefined>();

/** A sync of the per-agent users that took at least this long (ms) makes the next one wait ({@link syncGatherMs}). */
export const SYNC_SLOW_MS = 20;
/** Nor does a sync of fewer users than this make the next one wait: with few agents a reload is cheap. */
export const SYNC_GATHER_MIN_USERS = 100;
/** The longest a sync waits after the one before it ended, ms. */
export const SYNC_GATHER_MAX_MS = 500;

/**
 * How long after a sync that took `lastSyncMs` (ms) and gave `users` users the next one may start,
 * ms: 0 when it took less than {@link SYNC_SLOW_MS} or gave fewer than
 * {@link SYNC_GATHER_MIN_USERS} users, else twice its time (so syncs take at most about a third of
 * the time while agents keep starting), at most {@link SYNC_GATHER_MAX_MS}.
 */
export function syncGatherMs(lastSyncMs: number, users: number): number {
  return lastSyncMs < SYNC_SLOW_MS || users < SYNC_GATHER_MIN_USERS ? 0 : Math.min(SYNC_GATHER_MAX_MS, 2 * lastSyncMs);
}

/**
 * Whether agent `agent` runs in a pod (its template says `placement.target: kubernetes`): its NATS
 * user then gets `agentNatsPermissions(…, { runner: true })`, what its gateway in the pod needs.
 */
export function runsInPod(ctx: Pick<SupervisorContext, 'accounts' | 'templates'>, agent: string): boolean {
  return ctx.templates.get(ctx.accounts.get(agent)?.template ?? '')?.placement.target === 'kubernetes';
}
