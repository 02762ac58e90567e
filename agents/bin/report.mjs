// The reporter agent's runtime. Runs inside the sandbox with Node's built-ins only: reads the task
// from $WARREN_TASK_FILE, writes the report its `report` field names into $WARREN_WORKSPACE, and
// prints a one-line summary (the runner puts the tail of stdout on the card).
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const task = JSON.parse(readFileSync(process.env.WARREN_TASK_FILE, 'utf8'));
const workspace = process.env.WARREN_WORKSPACE;
const kind = task.fields?.report;

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function workspacePackages() {
  const found = [];
  for (const group of ['/repo/packages', '/repo/services']) {
    if (!existsSync(group)) continue;
    for (const dir of readdirSync(group).sort()) {
      const manifest = join(group, dir, 'package.json');
      if (existsSync(manifest)) found.push({ dir: join(group, dir), manifest: readJson(manifest) });
    }
  }
  return found;
}

function dependencies() {
  const packages = workspacePackages();
  const lines = ['# Dependencies by package', '', '| package | internal | external |', '| --- | --- | --- |'];
  const external = new Map();
  for (const { manifest } of packages) {
    const deps = Object.entries(manifest.dependencies ?? {});
    const internal = deps.filter(([n]) => n.startsWith('@warren/')).map(([n]) => n.slice(8));
    const outside = deps.filter(([n]) => !n.startsWith('@warren/'));
    for (const [n, range] of outside) external.set(n, [...(external.get(n) ?? []), `${manifest.name} ${range}`]);
    lines.push(`| ${manifest.name} | ${internal.join(', ') || '-'} | ${outside.map(([n, r]) => `${n} ${r}`).join(', ') || '-'} |`);
  }
  lines.push('', '## External dependencies and who uses them', '');
  for (const [n, users] of [...external].sort()) lines.push(`- **${n}**: ${users.join('; ')}`);
  writeFileSync(join(workspace, 'dependencies.md'), `${lines.join('\n')}\n`);
  return `${packages.length} packages, ${external.size} external dependencies`;
}

function licenses() {
  const root = '/repo/node_modules';
  const counts = new Map();
  const rows = [];
  const visit = (dir, name) => {
    const manifest = join(dir, 'package.json');
    if (!existsSync(manifest)) return;
    const m = readJson(manifest);
    const license = typeof m.license === 'string' ? m.license : (m.license?.type ?? 'UNKNOWN');
    counts.set(license, (counts.get(license) ?? 0) + 1);
    rows.push(`| ${name} | ${m.version ?? '?'} | ${license} |`);
  };
  for (const entry of readdirSync(root).sort()) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) {
      for (const sub of readdirSync(join(root, entry)).sort()) visit(join(root, entry, sub), `${entry}/${sub}`);
    } else {
      visit(join(root, entry), entry);
    }
  }
  const summary = [...counts].sort((a, b) => b[1] - a[1]).map(([l, n]) => `${l}: ${n}`);
  const text = ['# Licenses of installed npm packages', '', ...summary.map((s) => `- ${s}`), '',
    '| package | version | license |', '| --- | --- | --- |', ...rows, ''].join('\n');
  writeFileSync(join(workspace, 'licenses.md'), text);
  return `${rows.length} packages; ${summary.slice(0, 3).join(', ')}`;
}

const reports = { dependencies, licenses };
const report = reports[kind];
if (!report) {
  console.error(`unknown report ${JSON.stringify(kind)}; known: ${Object.keys(reports).join(', ')}`);
  process.exit(2);
}
console.log(report());
