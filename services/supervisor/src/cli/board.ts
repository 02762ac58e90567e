import { Option, type Command } from 'commander';
import { checkBoard, formatBoardReport, importToWarrenBoard, loadBoard, normalizedTasks, type BoardFormatName } from '@warren/kanban';
import { addPathOptions, BOARD_FORMAT_NAMES, boardOptions, configFrom, ExitCode, type PathFlags } from './common.js';

/** Adds `warren board check` and `warren board import`: read boards in any supported format. */
export function registerBoardCommands(program: Command): void {
  const board = program.command('board').description('read boards in any supported format');
  addPathOptions(board.command('check').description('load a board and report every task, error, WIP violation and dependency problem'))
    .addOption(new Option('--format <format>', 'the board format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { format?: BoardFormatName; json?: boolean }) => {
      const config = configFrom(flags, {});
      const report = await checkBoard(config.boardDir, await boardOptions(flags));
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatBoardReport(report)}\n`);
      process.exitCode = report.ok ? ExitCode.ok : ExitCode.failed;
    });
  addPathOptions(board.command('import').description('print a board as normalized tasks, or write it as a Warren board with --out'))
    .addOption(new Option('--format <format>', 'the source format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--out <dir>', 'write a Warren board (board.yaml + tasks/) into this new folder')
    .action(async (flags: PathFlags & { format?: BoardFormatName; out?: string }) => {
      const config = configFrom(flags, {});
      const snapshot = await loadBoard(config.boardDir, await boardOptions(flags));
      if (!flags.out) {
        process.stdout.write(`${JSON.stringify(normalizedTasks(snapshot), null, 2)}\n`);
      } else {
        const written = await importToWarrenBoard(snapshot, flags.out);
        process.stdout.write(`${written.map((p) => `wrote ${p}`).join('\n')}\n${written.length} files written; ${snapshot.errors.length} files could not be read\n`);
      }
      for (const error of snapshot.errors) process.stderr.write(`warren: ${error.message}\n`);
      process.exitCode = snapshot.errors.length === 0 ? ExitCode.ok : ExitCode.failed;
    });
}
