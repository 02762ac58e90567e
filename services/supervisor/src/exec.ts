import { existsSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { openAccounts } from '@warren/accounts';
import { openAudit } from '@warren/audit';
import { WarrenError, type Logger } from '@warren/core';
import { loadPolicy } from '@warren/policy';
import { assertIsolation, describeExit, probeHost, spawnSandbox, type SandboxExit } from '@warren/sandbox';
import { openDatabase } from '@warren/store';
import { agentSandboxSpec, instanceTag } from './agent-spec.js';
import type { SupervisorConfig } from './config.js';
import { loadTemplates } from './templates.js';

/** Options of {@link execInAgent}. */
export interface ExecOptions {
  readonly agent: string;
  /** The command to run, absolute path or name on the agent's PATH, then its arguments. */
  readonly argv: readonly string[];
  /** Who asks (`user:<name>`): the policy subject and the audit actor. */
  readonly user: string;
  /** Receives the command's output (stdout and stderr, interleaved as written) while it runs. */
  readonly output: (chunk: Buffer) => void;
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
}

/**
 * Runs a command inside an agent's sandbox exactly as its tasks run (the way `kubectl exec` does):
 * its uid and gid, its home, its limits, its read-only mounts, no network, the seccomp filter. The
 * policy decides first (`sub` = `user`, `obj` = `agent:<name>`, `act` = `exec`), and the request and
 * its outcome are audited. Output is streamed while the command runs.
 * @returns the command's exit code (128 + n when killed by signal n; 1 for any other end, such as
 *   an OOM kill, with the reason written to the output).
 * @throws {WarrenError} `WARREN_NO_AGENT` for an unknown agent, `WARREN_POLICY_DENIED` when refused.
 */
export async function execInAgent(config: SupervisorConfig, options: ExecOptions): Promise<number> {
  assertIsolation(await probeHost());
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  try {
    const accounts = openAccounts(db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
    const audit = openAudit(db);
    const account = accounts.get(options.agent);
    if (!account) throw new WarrenError('WARREN_NO_AGENT', `no agent named ${options.agent}`);
    const { templates } = await loadTemplates(config.agentsDir, config.root);
    const template = templates.get(account.template);
    if (!template) throw new WarrenError('WARREN_NO_AGENT', `${options.agent}'s template ${account.template} is not in ${config.agentsDir}`);
    const policy = await loadPolicy({
      modelPath: join(config.policiesDir, 'model.conf'),
      policyPath: join(config.policiesDir, 'policy.csv'),
      logger: options.logger,
    });
    const object = `agent:${account.name}`;
    const allowed = policy.enforce(options.user, object, 'exec');
    audit.append({ actor: options.user, action: 'policy.decide', object, decision: allowed ? 'allow' : 'deny', details: { act: 'exec' } });
    if (!allowed) throw new WarrenError('WARREN_POLICY_DENIED', `policy denies ${options.user} exec into ${account.name}`);

    const [program, ...args] = options.argv;
    if (!program) throw new WarrenError('WARREN_USAGE', 'exec needs a command');
    // The sandbox sees the host's /usr read-only, so a bare name is looked up on the agent's PATH there.
    const resolved = isAbsolute(program)
      ? program
      : ['/usr/local/bin', '/usr/bin', '/bin'].map((dir) => join(dir, program)).find((path) => existsSync(path));
    if (!resolved) throw new WarrenError('WARREN_USAGE', `${program}: not found on the agent's PATH (/usr/local/bin:/usr/bin:/bin)`);
    const runDir = join(config.stateDir, 'run', 'exec', String(process.pid));
    const logPath = join(runDir, 'output.log');
    const sandbox = await spawnSandbox(
      agentSandboxSpec({
        config,
        accounts,
        account,
        template,
        sandboxName: `${instanceTag(config.stateDir)}-${account.name}-x${process.pid}`.slice(0, 63),
        argv: [resolved, ...args],
        env: {},
        hostEnv: options.hostEnv,
        runDir,
        logPath,
      }),
      { logger: options.logger },
    );
    audit.append({ actor: options.user, action: 'agent.exec', object, details: { argv: options.argv, sandboxPid: sandbox.pid } });
    const exit = await follow(logPath, sandbox.exited, options.output);
    audit.append({ actor: options.user, action: 'agent.exec_exit', object, details: { exit, argv: options.argv } });
    await rm(runDir, { recursive: true, force: true });
    return exitCodeOf(exit, options.output);
  } finally {
    db.close();
  }
}

/** Streams what is appended to `path` until `done` settles, then the rest. */
async function follow(path: string, done: Promise<SandboxExit>, output: (chunk: Buffer) => void): Promise<SandboxExit> {
  let finished: SandboxExit | undefined;
  void done.then((exit) => (finished = exit));
  let offset = 0;
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    const ended = finished;
    try {
      const file = await open(path, 'r');
      try {
        for (;;) {
          const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          output(Buffer.from(buffer.subarray(0, bytesRead)));
        }
      } finally {
        await file.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (ended) return ended;
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 20))]);
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

function exitCodeOf(exit: SandboxExit, output: (chunk: Buffer) => void): number {
  switch (exit.kind) {
    case 'succeeded':
      return 0;
    case 'failed':
      return exit.exitCode;
    case 'signaled':
      return 128 + (SIGNALS[exit.signal] ?? 0);
    default:
      output(Buffer.from(`warren: ${describeExit(exit)}\n`));
      return 1;
  }
}
