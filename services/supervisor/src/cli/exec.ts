import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { execInAgent } from '../exec.js';
import { addPathOptions, configFrom, makeLogger, type PathFlags } from './common.js';

/** Adds `warren exec <agent> -- <cmd…>`: run a command inside an agent's sandbox as its tasks run. */
export function registerExecCommand(program: Command): void {
  const operator = `user:${userInfo().username}`;
  addPathOptions(
    program
      .command('exec')
      .argument('<agent>', 'the agent (e.g. shell-1)')
      .argument('<command...>', 'the command and its arguments (put -- before options meant for it)')
      .description("run a command inside an agent's sandbox, as its tasks run; prints its output, exits with its code"),
  ).action(async (agent: string, argv: string[], flags: PathFlags) => {
    const config = configFrom(flags, {});
    process.exitCode = await execInAgent(config, {
      agent,
      argv,
      user: operator,
      stdout: process.stdout,
      stderr: process.stderr,
      hostEnv: process.env,
      logger: makeLogger({ ...config, logLevel: 'warn' }, process.env),
    });
  });
}
