#!/usr/bin/env node
// `npm run example:agents`: real coding agents work a Backlog.md board.
//
// Four cards, labelled claude, codex, opencode and llm, go to four templates: Claude Code, Codex
// and opencode (the real CLIs from npm, `bash scripts/agent-clis.sh install`) and Warren's own
// agent loop. Each agent is a Unix account in a bubblewrap sandbox with no network; each task runs
// in its own git worktree of `app/` on branch warren/<agent>/<task>; every LLM call goes through
// Warren's gateway, which adds the provider's key (no agent ever holds one) and counts the tokens.
//
// With ANTHROPIC_API_KEY and OPENAI_API_KEY set, the agents call the real providers (the files in
// providers/). Without them, a local stand-in that speaks the same wire protocols answers with a
// scripted session per card, and the provider key is a secret kept by `warren secret set --gateway`.
//
// The board, templates and repository are copied to var/examples/coding-agents/ (ignored by git)
// afresh on each run; the tracked files are never written. Exits 0 when every card is done.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const work = join(root, 'var', 'examples', 'coding-agents');
const cli = join(root, 'services', 'supervisor', 'bin', 'warren.js');
const real = Boolean(process.env.ANTHROPIC_API_KEY && process.env.OPENAI_API_KEY);

/** The example's paths, as `warren run` takes them. */
const paths = ['--board', join(work, 'backlog'), '--mapping', join(work, 'mapping.yaml'), '--agents', join(work, 'agents'), '--providers', join(work, 'providers'), '--policies', join(work, 'policies'), '--state-dir', join(work, 'var'), '--home', join(work, 'home')];

if (!existsSync(join(root, 'services', 'supervisor', 'dist', 'cli.js'))) {
  console.error('example: build first: npm run build');
  process.exit(2);
}
const clis = spawnSync('bash', [join(root, 'scripts', 'agent-clis.sh'), 'install'], { stdio: 'inherit' });
if (clis.status !== 0) process.exit(clis.status ?? 1);

// A fresh copy of the example, and its repository as a git repository.
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true, mode: 0o700 });
for (const entry of ['backlog', 'agents', 'app', 'mapping.yaml']) cpSync(join(here, entry), join(work, entry), { recursive: true });
const git = (...args) => spawnSync('git', ['-C', join(work, 'app'), '-c', 'user.name=Example', '-c', 'user.email=example@localhost', ...args], { stdio: 'ignore' });
git('init', '-q', '-b', 'main');
git('add', '-A');
git('commit', '-q', '-m', 'greeter: a greeting on the command line');

// The policy: the repository's, and the example's templates as workers.
cpSync(join(root, 'policies'), join(work, 'policies'), { recursive: true });
const templates = readdirSync(join(work, 'agents')).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length));
appendFileSync(join(work, 'policies', 'policy.csv'), `\n# The example's templates.\n${templates.map((t) => `g, template:${t}, role:worker`).join('\n')}\n`);

let fake;
if (real) {
  cpSync(join(here, 'providers'), join(work, 'providers'), { recursive: true });
  console.error('example: calling the real providers with ANTHROPIC_API_KEY and OPENAI_API_KEY (held by the gateway only)');
} else {
  const { startFakeLlm } = await import('@warren/testing');
  const { exampleSession } = await import('./session.mjs');
  const key = `sk-example-${randomBytes(12).toString('hex')}`;
  fake = Object.assign(await startFakeLlm({ script: exampleSession, apiKey: key }), { key });
  mkdirSync(join(work, 'providers'));
  const provider = (name, wire, base) => `name: ${name}\nbaseUrl: ${base}\nwire: ${wire}\nkey: { secret: PROVIDER_KEY }\nprices:\n  claude-sonnet-4-5: { input: 3, output: 15 }\n  gpt-5.2: { input: 1.25, output: 10 }\n`;
  writeFileSync(join(work, 'providers', 'anthropic.yaml'), provider('anthropic', 'anthropic-messages', fake.url));
  writeFileSync(join(work, 'providers', 'openai.yaml'), provider('openai', 'openai-chat', `${fake.url}/v1`));
  writeFileSync(join(work, 'providers', 'openai-responses.yaml'), provider('openai-responses', 'openai-responses', `${fake.url}/v1`));
  for (const template of templates) {
    const set = spawnSync(process.execPath, [cli, 'secret', 'set', template, 'PROVIDER_KEY', '--gateway', '--state-dir', join(work, 'var')], { cwd: root, input: key, encoding: 'utf8' });
    if (set.status !== 0) throw new Error(`warren secret set failed: ${set.stderr || set.error?.message}`);
  }
  console.error(`example: no ANTHROPIC_API_KEY and OPENAI_API_KEY: a local stand-in at ${fake.url} plays the providers, with a scripted session per card`);
}

let status = 1;
try {
  // Not spawnSync: the stand-in answers from this process's event loop while warren runs.
  const child = spawn(process.execPath, [cli, 'run', '--until-idle', ...paths, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env: { ...process.env, WARREN_AGENT_CLIS: join(root, 'tools', 'agent-clis') } });
  status = await new Promise((resolve) => {
    child.on('error', (error) => {
      console.error(`example: cannot start warren: ${error.message}`);
      resolve(1);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
} finally {
  if (fake) {
    const requests = fake.requests.length;
    const keyed = fake.requests.filter((r) => r.headers['x-api-key'] === fake.key || r.headers.authorization === `Bearer ${fake.key}`).length;
    await fake.close();
    console.error(`\nexample: the stand-in answered ${requests} LLM calls, ${keyed} of them carrying the provider key the gateway added`);
  }
}
const shown = relative(process.cwd(), work) || '.';
console.error(
  `\nexample: the worked board is ${shown}/backlog; each card names its branch and diff. Look around with\n` +
    `  npm run warren -- tasks --board ${shown}/backlog --mapping ${shown}/mapping.yaml --state-dir ${shown}/var\n` +
    `  npm run warren -- audit --action 'llm.*' --state-dir ${shown}/var\n` +
    `  git -C ${shown}/home/claude-1/repos/app log --all --oneline\n`,
);
process.exit(status);
