import type { Account } from '@warren/accounts';
import { deliverSecretFiles, secretEnv } from '@warren/secrets';
import { seedHome } from '@warren/workspace';
import type { SupervisorContext } from '../context.js';
import { AgentNatsUsers } from '../messaging/nats-users.js';
import type { AgentTemplate } from '../templates.js';

/** What an agent's start adds to its start spec: variables, and the work done once its home is attached. */
export interface AgentPreparation {
  /** Variables the template fills from the agent's secrets (`secrets.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** Seeds the home with the template's files where absent, and delivers the agent's secrets as files only its uid reads (`~/.warren/secrets/NAME`). */
  readonly prepareHome: () => Promise<void>;
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
export function prepareAgent(ctx: SupervisorContext, account: Account, template: AgentTemplate): AgentPreparation {
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
      await AgentNatsUsers.of(ctx)
        ?.issue(account.name, account.home, account.uid, account.gid)
        .catch((error: unknown) => ctx.log.error({ err: error, agent: account.name }, 'cannot give the agent its NATS credentials; it can still message through its bus socket'));
    },
  };
}
