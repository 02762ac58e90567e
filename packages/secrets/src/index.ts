/**
 * @warren/secrets: credentials for agents, encrypted at rest. A secret belongs to a template (every
 * agent of it) or to one agent, and goes either to the agent (a file only its uid reads, or an
 * environment variable its template names) or only to its LLM gateway (provider keys, which never
 * enter a sandbox). Values are sealed with AES-256-GCM under a 32-byte key kept in a file outside
 * the database (`<stateDir>/secrets.key`, mode 0600).
 *
 * ```ts
 * import { openDatabase } from '@warren/store';
 * import { deliverSecretFiles, openSecretStore, secretEnv, secretsKeyPath } from '@warren/secrets';
 * const db = openDatabase('var/warren.db');
 * const secrets = openSecretStore(db, { keyPath: secretsKeyPath('var', process.env) });
 * secrets.set('coder', 'OPENAI_API_KEY', 'sk-…', { gateway: true });
 * secrets.set('coder-2', 'GH_TOKEN', 'ghp_…');
 * const { agent, gateway } = secrets.secretsFor('coder-2', 'coder'); // agent: [GH_TOKEN], gateway: [OPENAI_API_KEY]
 * deliverSecretFiles({ homeDir: 'home/coder-2', uid: 1900000002, gid: 1900000002, secrets: agent });
 * secretEnv(agent, { GITHUB_TOKEN: 'GH_TOKEN' });                  // { GITHUB_TOKEN: 'ghp_…' }
 * secrets.list();                                                   // names, targets, times: never values
 * db.close();
 * ```
 */
export { openSecretStore } from './store.js';
export type { SecretStore, SecretStoreOptions, SecretInfo, ResolvedSecret, AgentSecrets } from './store.js';
export { secretsKeyPath, readKeyFile, createKeyFile, SECRETS_KEY_FILE, KEY_BYTES } from './key.js';
export type { SecretsKey } from './key.js';
export {
  ScopeKind,
  parseSecretTarget,
  templateOfAgent,
  checkSecretName,
  secretBytes,
  TEMPLATE_NAME,
  AGENT_NAME,
  SECRET_NAME,
  ENV_NAME,
  MAX_SECRET_BYTES,
} from './names.js';
export type { SecretTarget } from './names.js';
export { deliverSecretFiles, secretEnv, SECRETS_DIR, SECRET_FILE_MODE, SECRETS_DIR_MODE } from './delivery.js';
export type { DeliverSecretFilesOptions, DeliverableSecret, SecretDelivery } from './delivery.js';
export { SecretError, SecretKeyError, SecretDecryptError, SecretDeliveryError } from './errors.js';
