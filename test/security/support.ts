/**
 * Shared parts of the broker security tests: an attacker program run as uid 65534 (`nobody`)
 * with the repository's own NATS client, and readers of a supervisor's log and audit trail.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo, warrenSync, type AuditRow, type TestLayout } from '../support/cli.js';

/** The uid and gid the attacker runs as. */
export const NOBODY = 65534;

const ATTACK = `
import { connect } from ${JSON.stringify(join(repo, 'node_modules', '@nats-io', 'transport-node', 'lib', 'mod.js'))};
import { jetstream } from ${JSON.stringify(join(repo, 'node_modules', '@nats-io', 'jetstream', 'lib', 'mod.js'))};
const [url, what, ...rest] = process.argv.slice(2);
let nc;
try {
  nc = await connect({ servers: url, reconnect: false, timeout: 5000 });
} catch (error) {
  console.log(JSON.stringify({ connected: false, error: String(error.message) }));
  process.exit(0);
}
const out = { connected: true };
if (what === 'publish') {
  const [subject, msgID, payload] = rest;
  try {
    const ack = await jetstream(nc).publish(subject, payload, { msgID });
    out.stored = { seq: ack.seq, duplicate: ack.duplicate };
  } catch (error) {
    out.error = String(error.message);
  }
}
await nc.close();
console.log(JSON.stringify(out));
`;

/** What the attacker program printed. */
export interface AttackOutcome {
  readonly connected: boolean;
  readonly error?: string;
  readonly stored?: { seq: number; duplicate: boolean };
}

/**
 * Runs the attacker as uid/gid 65534 with no supplementary groups (`setpriv`): it connects to
 * `url` without credentials and, for `publish`, publishes `payload` (JSON) on `subject` through
 * JetStream with message id `msgId`. Resolves with what it printed.
 * @throws if the program fails or prints no outcome within 60 s.
 */
export async function attack(url: string, ...args: ['connect'] | ['publish', string, string, unknown]): Promise<AttackOutcome> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-attack-'));
  try {
    chmodSync(dir, 0o755);
    const script = join(dir, 'attack.mjs');
    writeFileSync(script, ATTACK, { mode: 0o644 });
    const argv = args[0] === 'publish' ? [args[0], args[1], args[2], JSON.stringify(args[3])] : [args[0]];
    const child = spawn(
      'setpriv',
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, script, url, ...argv],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    const line = stdout.trim().split('\n').pop() ?? '';
    if (code !== 0 || !line.startsWith('{')) throw new Error(`the attacker failed (exit ${code}): ${stdout}\n${stderr}`);
    return JSON.parse(line) as AttackOutcome;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The audit rows of `layout`'s state, filtered by `filter` (`warren audit` options). */
export function auditRows(layout: TestLayout, ...filter: string[]): AuditRow[] {
  return JSON.parse(warrenSync(['audit', '--json', '--limit', '100000', ...filter, ...layout.args()])) as AuditRow[];
}

/** The `url` of the `nats-server started` line of a supervisor's JSON log, once it is there. */
export function embeddedNatsUrl(stderr: string): string | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.includes('nats-server started')) continue;
    try {
      const url = (JSON.parse(line) as { url?: unknown }).url;
      if (typeof url === 'string') return url;
    } catch {
      // a partial line
    }
  }
  return undefined;
}

/** The `status:` value of a task file's frontmatter. */
export function statusOf(text: string): string | undefined {
  return /^status:\s*(\S+)/m.exec(text)?.[1];
}

