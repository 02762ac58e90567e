import { Command } from 'commander';
import { WarrenError } from '@warren/core';
import { registerOperatorCommands, registerReadCommands } from './cli/agents-tasks.js';
import { registerAuditCommand } from './cli/audit.js';
import { registerBoardCommands } from './cli/board.js';
import { ExitCode } from './cli/common.js';
import { registerExecCommand } from './cli/exec.js';
import { registerMcpCommand } from './cli/mcp.js';
import { registerNodeCommands } from './cli/node.js';
import { registerRunCommands } from './cli/run.js';
import { registerPolicyCommands } from './cli/policy.js';
import { registerScheduleCommands } from './cli/schedule.js';
import { registerSecretCommands } from './cli/secret.js';
import { registerTokenCommands } from './cli/token.js';

export { ExitCode } from './cli/common.js';

/**
 * Builds the `warren` command line program (commander). `run` parses argv and executes; the
 * returned promise resolves with the process exit code.
 */
export function buildProgram(): Command {
  const program = new Command('warren')
    .description('Warren: an operating-system runtime for AI agents')
    .showHelpAfterError()
    .exitOverride();

  registerRunCommands(program);
  registerReadCommands(program);
  registerAuditCommand(program);
  registerBoardCommands(program);
  registerExecCommand(program);
  registerOperatorCommands(program);
  registerPolicyCommands(program);
  registerTokenCommands(program);
  registerSecretCommands(program);
  registerMcpCommand(program);
  registerScheduleCommands(program);
  registerNodeCommands(program);
  return program;
}

/**
 * Runs the CLI on `argv` (as `process.argv`). Errors Warren throws on purpose are printed as one
 * line with their code; anything else with its stack.
 * @returns the exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return ExitCode.ok;
    if (typeof code === 'string' && code.startsWith('commander.')) return ExitCode.usage;
    if (error instanceof WarrenError) {
      process.stderr.write(`warren: ${error.message} [${error.code}]\n`);
      return ExitCode.failed;
    }
    process.stderr.write(`warren: ${(error as Error).stack ?? String(error)}\n`);
    return ExitCode.failed;
  }
}

