#!/usr/bin/env node
// `npm run demo`: Warren works a copy of the repository's demo board.
//
// The tracked board in `kanban/` is the demo's starting point and is never written: each demo run
// copies it afresh to `var/demo/kanban/` (ignored by git) and runs
// `warren run --until-idle --board var/demo/kanban` there, with every other option at its default
// (state in `var/`, homes in `home/`). Extra arguments are passed on to `warren run`.
// Exits with warren's exit code: 0 when every task succeeded, 1 otherwise.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const board = join(root, 'var', 'demo', 'kanban');

rmSync(board, { recursive: true, force: true });
mkdirSync(dirname(board), { recursive: true, mode: 0o700 });
cpSync(join(root, 'kanban'), board, { recursive: true });

const cli = join(root, 'services', 'supervisor', 'bin', 'warren.js');
const args = ['run', '--until-idle', '--root', root, '--board', board, ...process.argv.slice(2)];
const run = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
if (run.error) {
  console.error(`demo: cannot start warren: ${run.error.message}`);
  process.exit(1);
}
const shown = relative(process.cwd(), board) || '.';
console.error(
  `\ndemo: the worked board is ${shown}; look around with\n` +
    `  npm run warren -- tasks --board ${shown}\n` +
    '  npm run warren -- agents\n' +
    "  npm run warren -- audit --action 'task.*'\n" +
    `and in the browser: npm run warren -- up --board ${shown}   (prints the dashboard's address and a sign-in link)\n`,
);
process.exit(run.status ?? 1);
