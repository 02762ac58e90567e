import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Account } from '@warren/accounts';
import { agentNatsConfig, createAgentNkey } from '@warren/broker';
import { deliverSecretFiles, SECRET_FILE_MODE, SECRETS_DIR, secretEnv } from '@warren/secrets';
import { seedHome } from '@warren/workspace';
import type { SupervisorContext } from '../context.js';
import { AGENT_NATS_FILE, AgentNatsUsers, migrateAgentNatsKeys } from '../messaging/nats-users.js';
import type { AgentTemplate } from '../templates.js';

/** What an agent's start adds to its start spec: variables, and the work done once its home is attached. */
export interface AgentPreparation {
  /** Variables the template fills from the agent's secrets (`secrets.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** Seeds the home with the template's files where absent, and delivers the agent's secrets as files only its uid reads (`~/.warren/secrets/NAME`). */
  readonly prepareHome: () => Promise<void>;
  /**
   * The same files as {@link prepareHome} writes, as data for a home on another host (a `warren
   * node`, a pod): seed files (mode 0600), secret files (`.warren/secrets/NAME`, mode 0400) and,
   * when the supervisor runs its NATS server, a fresh `.warren/nats.json` (mode 0400; its key
   * replaces the agent's previous one). The receiving host writes them as the agent, keeping a
   * seed file the agent changed.
   * @throws what reading a seed file's source throws (`ENOENT`, naming the path), or what issuing
   *   the NATS key throws.
   */
  readonly homeFiles: () => Promise<HomeFile[]>;
}

/**
 * One file for an agent's home on another host: `path` relative to the home, its bytes in base64,
 * its mode (0..0o777), and whether it replaces a file already there (`overwrite`: credentials and
 * secrets; without it, a seed file the agent changed is kept). The `HomeFile` of `@warren/node`.
 */
export interface HomeFile {
  readonly path: string;
  readonly contentBase64: string;
  readonly mode: number;
  readonly overwrite?: boolean;
}

/** Mode of a seed file written into a home (as `seedHome` of `@warren/workspace` writes it by default). */
const SEED_FILE_MODE = 0o600;
/** Mode of `.warren/nats.json` (as the local path writes it). */
const NATS_FILE_MODE = 0o400;

/** Options of {@link prepareAgent}. */
export interface PrepareAgentOptions {
  /**
   * The agent was prepared ahead ({@link prepareAgentAhead}): its NATS user, credentials file and
   * consumers exist, so its home gets only its seed files and secrets again. Default false.
   */
  readonly preparedAhead?: boolean;
}

/**
 * Resolves the secrets of `account` (its own over its template's; gateway-only ones never reach
 * it) for its start: the variables its template names, and what is written into its home once
 * the home is attached (a home with a quota is mounted by the start): the template's seed files
 * (`home.seed`; one the agent changed is kept, one behind a symlink it planted is refused and
 * logged) and its secrets' files.
 * @throws {SecretKeyError | SecretDecryptError} when the secrets cannot be read;
 *   {@link WarrenError} `WARREN_SECRET_MISSING` when the template names a secret the agent has not.
 */
export function prepareAgent(ctx: SupervisorContext, account: Account, template: AgentTemplate, options: PrepareAgentOptions = {}): AgentPreparation {
  const resolved = ctx.secrets.secretsFor(account.name, template.name);
  const env = secretEnv(resolved.agent, template.secretEnv);
  return {
    env,
    prepareHome: async () => {
      if (template.homeSeed.length > 0) {
        const seeded = await seedHome({ homeDir: account.home, uid: account.uid, gid: account.gid, files: template.homeSeed });
        for (const refusal of seeded.refused) ctx.log.warn({ agent: account.name, path: refusal.path, reason: refusal.reason }, 'seed file refused: something of the agent is in the way');
      }
      deliverSecretFiles({ homeDir: account.home, uid: account.uid, gid: account.gid, secrets: resolved.agent });
      if (options.preparedAhead === true || !localNatsUser(template)) return;
      await AgentNatsUsers.of(ctx)
        ?.issue(account.name, account.home, account.uid, account.gid)
        .catch((error: unknown) => ctx.log.error({ err: error, agent: account.name }, 'cannot give the agent its NATS credentials; it can still message through its bus socket'));
    },
    homeFiles: async () => {
      const files: HomeFile[] = [];
      for (const seed of template.homeSeed) {
        const bytes = seed.sourcePath !== undefined ? await readFile(seed.sourcePath) : Buffer.from(seed.content ?? '', 'utf8');
        files.push({ path: seed.path, contentBase64: bytes.toString('base64'), mode: SEED_FILE_MODE });
      }
      for (const secret of resolved.agent) {
        files.push({ path: posix.join(SECRETS_DIR, secret.name), contentBase64: Buffer.from(secret.value, 'utf8').toString('base64'), mode: SECRET_FILE_MODE, overwrite: true });
      }
      const nats = await natsFileFor(ctx, account.name).catch((error: unknown) => {
        ctx.log.error({ err: error, agent: account.name }, 'cannot give the agent its NATS credentials; it can still message through its bus socket');
        return undefined;
      });
      if (nats !== undefined) files.push(nats);
      return files;
    },
  };
}

/**
 * Whether an agent of `template` started on this host gets a NATS user and `~/.warren/nats.json`.
 * A sandbox here has no network, so the file serves only a program outside the sandbox acting as
 * the agent; a per-task agent (`lifecycle: autodelete`) lives for one task, and issuing its user
 * would cost two reloads of nats-server (its start and its removal) for a key nothing uses. It
 * messages through its bus socket and `::send` like every local agent. Agents elsewhere (nodes,
 * pods) always get theirs ({@link AgentPreparation.homeFiles}).
 */
export function localNatsUser(template: Pick<AgentTemplate, 'lifecycle'>): boolean {
  return template.lifecycle !== 'autodelete';
}

/**
 * Prepares agent `account` of `template` ahead of its start, with no process: its home seeded and
 * its secrets delivered, its NATS user and `~/.warren/nats.json` issued (with its inbox consumer),
 * and its assign consumer made, so that its start ({@link prepareAgent} with `preparedAhead`) only
 * starts the sandbox. A NATS user that cannot be issued is logged (as at a start).
 * @throws what {@link prepareAgent} throws; {@link WarrenError} from seeding the home;
 *   `BrokerError` when the assign consumer cannot be made.
 */
export async function prepareAgentAhead(ctx: SupervisorContext, account: Account, template: AgentTemplate): Promise<void> {
  await prepareAgent(ctx, account, template).prepareHome();
  await ctx.broker.ensureAssignConsumer(account.name);
}

/**
 * A fresh `.warren/nats.json` for agent `name` as a home file: a new NKey pair whose public key
 * replaces the agent's in `agent_nats_keys` and in the server's users (as `AgentNatsUsers.issue`
 * does for a local home). Undefined when the NATS server is external (no per-agent users).
 */
async function natsFileFor(ctx: SupervisorContext, name: string): Promise<HomeFile | undefined> {
  const users = AgentNatsUsers.of(ctx);
  if (users === undefined || ctx.nats === undefined) return undefined;
  migrateAgentNatsKeys(ctx.db);
  const key = createAgentNkey();
  const config = agentNatsConfig(ctx.broker.namespace, name, [ctx.nats.url], key.seed);
  ctx.db
    .prepare('INSERT INTO agent_nats_keys (agent, public_key, issued_ms) VALUES (?, ?, ?) ON CONFLICT (agent) DO UPDATE SET public_key = excluded.public_key, issued_ms = excluded.issued_ms')
    .run(name, key.publicKey, Date.now());
  await users.sync();
  // Agents may not make consumers: the supervisor makes the agent's inbox consumer for it.
  for (const delivery of await ctx.broker.fetchMessages(name, { max: 1, expiresMs: 0 })) delivery.nak();
  return { path: AGENT_NATS_FILE, contentBase64: Buffer.from(`${JSON.stringify(config)}\n`, 'utf8').toString('base64'), mode: NATS_FILE_MODE, overwrite: true };
}
