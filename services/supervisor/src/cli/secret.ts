import { join } from 'node:path';
import { userInfo } from 'node:os';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { WarrenError } from '@warren/core';
import { openAudit, type AuditTrail } from '@warren/audit';
import { MAX_SECRET_BYTES, openSecretStore, parseSecretTarget, secretsKeyPath, type SecretInfo, type SecretStore } from '@warren/secrets';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import type { SupervisorConfig } from '../config.js';
import { secureStateDir } from '../state-dir.js';
import { addPathOptions, configFrom, ExitCode, iso, print, table, type PathFlags } from './common.js';

/** What a secret command works with: the state database, its secret store and its audit trail. */
interface SecretsState {
  readonly db: SqliteDatabase;
  readonly store: SecretStore;
  readonly audit: AuditTrail;
}

/**
 * Runs `use` on the secret store of the state database of `config` (the key file is
 * `WARREN_SECRETS_KEY_FILE` or `<stateDir>/secrets.key`), creating the private state directory and
 * the database when missing, then closes the database.
 */
async function withSecrets<T>(config: SupervisorConfig, use: (state: SecretsState) => T): Promise<T> {
  await secureStateDir(config.stateDir);
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  try {
    return use({ db, store: openSecretStore(db, { keyPath: secretsKeyPath(config.stateDir, process.env) }), audit: openAudit(db) });
  } finally {
    db.close();
  }
}

/**
 * Reads a secret's value from `input` to its end: the bytes, with one trailing newline (`\n` or
 * `\r\n`) removed. Stops reading past the largest value allowed.
 * @throws {WarrenError} `WARREN_USAGE` when `input` is a terminal (a value typed there would echo
 *   and stay in the scrollback), empty, or longer than 64 KiB.
 */
export async function readSecretValue(input: Readable & { isTTY?: boolean }, usage: string): Promise<Buffer> {
  if (input.isTTY === true) {
    throw new WarrenError('WARREN_USAGE', `the value is read from standard input, not a terminal: ${usage} < value-file (or pipe it from a password manager)`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = MAX_SECRET_BYTES + 2; // room for a trailing \r\n
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += bytes.length;
    chunks.push(bytes);
    if (size > limit) {
      input.destroy();
      throw new WarrenError('WARREN_USAGE', `the value on standard input is longer than ${MAX_SECRET_BYTES} bytes, the most a secret may hold`);
    }
  }
  let value = Buffer.concat(chunks);
  for (const chunk of chunks) chunk.fill(0);
  if (value.at(-1) === 0x0a) value = value.subarray(0, value.at(-2) === 0x0d ? -2 : -1);
  if (value.length === 0) throw new WarrenError('WARREN_USAGE', `standard input held no value: ${usage} < value-file`);
  return value;
}

const delivery = (info: SecretInfo) => (info.gateway ? 'gateway' : 'agent');

/** The audit object of a secret: `secret:<target>/<NAME>`. */
const auditObject = (info: SecretInfo) => `secret:${info.target}/${info.name}`;

/**
 * Adds `warren secret set|list|rm`: credentials of a template (every agent of it) or one agent,
 * encrypted at rest. A value is read from standard input only and never printed, logged or
 * audited; each change appends `secret.set` or `secret.delete` to the audit trail with the target,
 * the name and the gateway flag.
 */
export function registerSecretCommands(program: Command): void {
  const actor = `user:${userInfo().username}`;
  const secret = program.command('secret').description('credentials for agents: set from stdin, list, remove (values are never shown)');

  addPathOptions(
    secret
      .command('set')
      .description('store a secret read from standard input (a trailing newline is dropped); replaces one of the same name')
      .argument('<target>', 'a template (coder): all its agents; or an agent (coder-2): that one')
      .argument('<name>', 'the secret name, as an environment variable is written (OPENAI_API_KEY)'),
  )
    .option('--gateway', 'only the LLM gateway receives it (a provider key); never the agent')
    .option('--json', 'print JSON')
    .action(async (targetText: string, name: string, flags: PathFlags & { gateway?: boolean; json?: boolean }) => {
      const target = parseSecretTarget(targetText);
      const config = configFrom(flags, {});
      const value = await readSecretValue(process.stdin, `warren secret set ${targetText} ${name}${flags.gateway ? ' --gateway' : ''}`);
      const { info, created } = await withSecrets(config, ({ db, store, audit }) =>
        db.transaction(() => {
          const stored = store.set(target, name, value, { gateway: flags.gateway ?? false });
          audit.append({ actor, action: 'secret.set', object: auditObject(stored.info), details: { target: stored.info.target, name, gateway: stored.info.gateway } });
          return stored;
        }).immediate(),
      );
      value.fill(0);
      print(flags.json ?? false, { ...info, created }, () =>
        `${created ? 'stored' : 'replaced'} secret ${name} of ${target.kind} ${target.name} (${info.gateway ? 'for its LLM gateway only' : 'delivered to the agent'}); the value is not shown again\n`,
      );
    });

  addPathOptions(
    secret
      .command('list')
      .description('list secrets: target, name, who receives it, last set (never values)')
      .argument('[target]', 'only the secrets of this template or agent'),
  )
    .option('--json', 'print JSON')
    .action(async (targetText: string | undefined, flags: PathFlags & { json?: boolean }) => {
      const target = targetText === undefined ? undefined : parseSecretTarget(targetText);
      const config = configFrom(flags, {});
      const list = await withSecrets(config, ({ store }) => store.list(target));
      print(flags.json ?? false, list, () =>
        list.length === 0
          ? `no secrets${target ? ` of ${target.name}` : ''}: warren secret set <template|agent> NAME [--gateway] < value-file\n`
          : table([['TARGET', 'KIND', 'NAME', 'RECEIVER', 'UPDATED'], ...list.map((s) => [s.target, s.kind, s.name, delivery(s), iso(s.updatedMs)])]),
      );
    });

  addPathOptions(
    secret
      .command('rm')
      .description('remove a secret')
      .argument('<target>', 'the template or agent it belongs to')
      .argument('<name>', 'the secret name'),
  )
    .option('--json', 'print JSON')
    .action(async (targetText: string, name: string, flags: PathFlags & { json?: boolean }) => {
      const target = parseSecretTarget(targetText);
      const config = configFrom(flags, {});
      const removed = await withSecrets(config, ({ db, store, audit }) =>
        db.transaction(() => {
          const info = store.delete(target, name);
          if (info !== undefined) {
            audit.append({ actor, action: 'secret.delete', object: auditObject(info), details: { target: info.target, name, gateway: info.gateway } });
          }
          return info;
        }).immediate(),
      );
      if (removed === undefined) {
        process.stderr.write(`warren: no secret ${name} of ${target.name} (warren secret list)\n`);
        process.exitCode = ExitCode.failed;
        return;
      }
      print(flags.json ?? false, removed, () => `removed secret ${name} of ${target.kind} ${target.name}\n`);
    });
}
