/**
 * Reading the Prometheus text exposition format 0.0.4 in tests
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): one sample per
 * line, `name{label="value",…} value`, comments starting with `#`.
 */

/** One sample line: the metric name, its labels and its value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample of `body`. @throws {Error} naming the line that is not a sample or a comment. */
export function samples(body: string): Sample[] {
  const out: Sample[] = [];
  body.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) throw new Error(`exposition line ${i + 1} is not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3]!;
    out.push({ name: m[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  });
  return out;
}

/** The samples of metric `name` whose labels include `labels`. */
export function find(body: string, name: string, labels: Readonly<Record<string, string>> = {}): Sample[] {
  return samples(body).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample of `name` with `labels`; undefined when there is none. @throws {Error} if several match. */
export function value(body: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const found = find(body, name, labels);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** `# TYPE` of each metric family in `body`. */
export function types(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** `# HELP` text of each metric family in `body`. */
export function helps(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    const m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}
