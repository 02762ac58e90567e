import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_HOME_LIMIT } from './disk.js';
import { ConfigError, parseBytes, parseDurationMs, WarrenError } from '@warren/core';
import { lineOf, parseYamlSource } from '@warren/kanban';
import { AGENTS_BIN_IN_SANDBOX } from '@warren/runtime';

/** An agent template in `agents/` is invalid; `path`, `line` and `key` say where. */
export class TemplateError extends WarrenError {
  constructor(
    readonly path: string,
    readonly line: number,
    readonly key: string | undefined,
    detail: string,
  ) {
    super('WARREN_TEMPLATE_INVALID', `${path}:${line}: ${key ? `'${key}' ` : ''}${detail}`);
  }
}

/**
 * The bytes each size key of a template may hold, [min, max]: the ranges the sandbox enforces
 * (memory and the home quota at least 4 MiB, the others at least 1 byte, none past 2^53 − 1). Keys not listed: [1, 2^53 − 1].
 */
export const SIZE_LIMITS: Readonly<Record<string, readonly [number, number]>> = {
  'resources.memory': [4 * 1024 * 1024, Number.MAX_SAFE_INTEGER],
  'resources.fileSize': [1, Number.MAX_SAFE_INTEGER],
  'resources.tmp': [1, Number.MAX_SAFE_INTEGER],
  'resources.home': [4 * 1024 * 1024, Number.MAX_SAFE_INTEGER],
  'resources.homeLimit': [1, Number.MAX_SAFE_INTEGER],
  'watchdog.memory': [1, Number.MAX_SAFE_INTEGER],
};

/** Template lifecycle modes, as komputer.ai defines them. */
export const LifecycleMode = { persistent: 'persistent', sleep: 'sleep', autodelete: 'autodelete' } as const;
export type LifecycleMode = (typeof LifecycleMode)[keyof typeof LifecycleMode];

const duration = z.union([z.string(), z.number()]);
const size = z.union([z.string(), z.number()]);
const name = z
  .string()
  .regex(/^[a-z][a-z0-9]{0,15}$/, 'must be 1-16 lowercase letters or digits, starting with a letter')
  .refine((n) => n !== 'skel', "'skel' is reserved: home/skel is the skeleton of new homes");
const providerName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a provider name: lowercase letters, digits and -');
const secretName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'must be a secret name: capital letters, digits and _');
const budgetLimits = z
  .object({ tokens: z.number().int().min(1).optional(), cost: z.number().positive().optional() })
  .strict();
const capability = z.string().regex(/^[a-z0-9][a-z0-9:._-]*$/, 'must be lowercase letters, digits and : . _ -');

/** A node label's key: a Kubernetes-style label name (`zone`, `gpu`, `example.com/disk`). */
export const LABEL_KEY = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_KEY_RULE = 'must be a label name: letters, digits, . _ - (at most 63), optionally after a DNS prefix and /';
/** A node label's value: empty, or up to 63 letters, digits, `.`, `_`, `-`, starting and ending with a letter or digit (as Kubernetes label values). */
export const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const LABEL_VALUE_RULE = 'must be a label value: at most 63 letters, digits, . _ -, starting and ending with a letter or digit';

/** The schema of a template file, as written (user units: '512MiB', '10m'). Unknown keys are errors. */
export const TemplateFile = z
  .object({
    name,
    description: z.string().default(''),
    capabilities: z.array(capability).min(1),
    runtime: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('shell'), timeout: duration.default('10m') }).strict(),
      z
        .object({
          kind: z.literal('exec'),
          command: z.array(z.string().min(1)).min(1),
          timeout: duration.default('10m'),
        })
        .strict(),
      ...(['claude-code', 'codex', 'opencode'] as const).map((kind) =>
        z
          .object({
            kind: z.literal(kind),
            /** The provider (a file in `providers/`) its calls go to through the gateway. */
            provider: providerName,
            model: z.string().min(1).max(200).optional(),
            maxTurns: z.number().int().min(1).max(1_000).optional(),
            /** Give the CLI Warren's MCP tools (those the policy allows its agents) through its gateway. */
            mcp: z.boolean().default(false),
            timeout: duration.default('30m'),
          })
          .strict(),
      ),
      z
        .object({
          kind: z.literal('llm'),
          provider: providerName,
          model: z.string().min(1).max(200),
          maxTurns: z.number().int().min(1).max(1_000).default(20),
          timeout: duration.default('30m'),
        })
        .strict(),
    ]),
    /** The LLM gateway's rules for this template's agents. */
    llm: z
      .object({
        /** Providers its agents may call; default: the runtime's provider. */
        providers: z.array(providerName).min(1).optional(),
        budget: z
          .object({
            /** Each execution of a task. */
            task: budgetLimits.optional(),
            /** Each agent, per UTC day. */
            agentDay: budgetLimits.optional(),
            /** All the template's agents together, per UTC day. */
            templateDay: budgetLimits.optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .optional(),
    /** Files copied into a new home (never over a file the agent changed). */
    home: z
      .object({
        seed: z
          .array(
            z
              .object({
                path: z.string().min(1).max(255),
                /** A file relative to the templates' folder. */
                source: z.string().min(1).optional(),
                content: z.string().max(1_048_576).optional(),
              })
              .strict()
              .refine((f) => (f.source === undefined) !== (f.content === undefined), 'needs exactly one of source and content'),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    /** A git repository (a host path or URL) each task works on, in its own worktree. */
    repository: z.object({ source: z.string().min(1), base: z.string().min(1).optional() }).strict().optional(),
    /** Secrets handed to the agent as environment variables: variable name → secret name. */
    secrets: z
      .object({ env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), secretName).default({}) })
      .strict()
      .prefault({}),
    /** Per-agent overrides of the model and resources, by agent name (`<template>-<n>`). */
    agents: z
      .record(
        z.string().regex(/^[a-z][a-z0-9]{0,15}-[1-9][0-9]{0,4}$/, 'must be an agent name such as coder-2'),
        z
          .object({
            model: z.string().min(1).max(200).optional(),
            resources: z.object({ memory: size.optional(), pids: z.number().int().min(8).max(65_536).optional(), cpu: z.number().int().min(1).max(10_000).optional() }).strict().optional(),
          })
          .strict(),
      )
      .default({}),
    resources: z
      .object({
        memory: size.default('512MiB'),
        pids: z.number().int().min(8).max(65_536).default(256),
        cpu: z.number().int().min(1).max(10_000).default(100),
        nofile: z.number().int().min(16).max(1_048_576).default(1024),
        fileSize: size.default('256MiB'),
        tmp: size.default('64MiB'),
        home: size.optional(),
        /** Largest size of the home (all its files' allocated blocks); a task that grows it past this is stopped. */
        homeLimit: size.default(DEFAULT_HOME_LIMIT),
      })
      .strict()
      .prefault({}),
    watchdog: z
      .object({
        /** Memory use (bytes, or a percentage of resources.memory such as '90%') that counts as over. */
        memory: z.union([size, z.string().regex(/^\d{1,3}%$/)]).default('90%'),
        /** CPU use in cores (1.5 = one and a half cores) that counts as over; absent = not watched. */
        cpu: z.number().positive().max(1_024).optional(),
        /** Processes that count as over; default 90% of resources.pids. */
        pids: z.number().int().min(1).optional(),
        /** How long an agent may stay over before it is killed. */
        grace: duration.default('10s'),
      })
      .strict()
      .prefault({}),
    /** `manager`: may split tasks and start workers (through Warren's MCP tools); `worker`: does tasks. */
    role: z.enum(['manager', 'worker']).optional(),
    /** A manager's quotas and the templates it may start workers of. */
    manager: z
      .object({
        maxWorkers: z.number().int().min(0).max(1_000).default(2),
        maxSubtasks: z.number().int().min(0).max(10_000).default(10),
        templates: z.array(name).default([]),
      })
      .strict()
      .optional(),
    maxInstances: z.number().int().min(1).max(10_000).default(1),
    wipPerInstance: z.number().int().min(1).max(1_000).default(1),
    lifecycle: z.enum(['persistent', 'sleep', 'autodelete']).default('persistent'),
    warmPool: z.number().int().min(0).max(10_000).default(0),
    prepared: z.number().int().min(0).max(1_000).optional(),
    isolation: z.enum(['full', 'unsafe-no-cgroups']).default('full'),
    retry: z
      .object({
        initialInterval: duration.default('1s'),
        backoffCoefficient: z.number().min(1).max(100).default(2),
        maximumInterval: duration.default('1m'),
        maximumAttempts: z.number().int().min(1).max(1_000).default(1),
      })
      .strict()
      .prefault({}),
    sleepAfterIdle: duration.default('30s'),
    environment: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default([]),
    mounts: z
      .array(
        z
          .object({
            source: z.string().min(1),
            target: z.string().regex(/^\/repo(\/[A-Za-z0-9._-]+)*$/, "must be under '/repo'"),
          })
          .strict(),
      )
      .default([]),
    /** Where its agents run: on the supervisor's host and `warren node` hosts (`nodes`, the default), or as Kubernetes pods. */
    placement: z
      .object({
        target: z.enum(['nodes', 'kubernetes']).default('nodes'),
        /** Labels a node must carry, each with this exact value (nodes only). */
        labels: z.record(z.string().regex(LABEL_KEY, LABEL_KEY_RULE), z.string().regex(LABEL_VALUE, LABEL_VALUE_RULE)).default({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type TemplateFile = z.infer<typeof TemplateFile>;

/** A retry policy as Temporal defines one (RetryPolicy: initial interval, backoff coefficient, maximum interval, maximum attempts). */
export interface RetryPolicy {
  readonly initialIntervalMs: number;
  readonly backoffCoefficient: number;
  readonly maximumIntervalMs: number;
  /** Executions of a task at most, the first included. */
  readonly maximumAttempts: number;
}

/**
 * The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed, in ms:
 * min(initialIntervalMs × backoffCoefficient^(attempt−1), maximumIntervalMs).
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  const raw = policy.initialIntervalMs * policy.backoffCoefficient ** Math.max(0, attempt - 1);
  return Math.round(Math.min(raw, policy.maximumIntervalMs));
}

/** The coding-agent CLIs Warren runs headless as runtimes. */
export const AGENT_CLI_KINDS = ['claude-code', 'codex', 'opencode'] as const;
export type AgentCliKind = (typeof AGENT_CLI_KINDS)[number];

/**
 * How a template's agents do a task:
 * - `shell`: the task's `command` with /bin/sh; `exec`: a fixed argv for every task.
 * - `claude-code`, `codex`, `opencode`: that CLI, headless, with the task as its prompt; `model`
 *   null = the CLI's default; `maxTurns` null = the CLI's default; `mcp`: it gets Warren's MCP tools.
 * - `llm`: Warren's own agent loop against an OpenAI-compatible provider.
 * The agent kinds call `provider` through the LLM gateway.
 */
export type TemplateRuntime =
  | { readonly kind: 'shell' }
  | { readonly kind: 'exec'; readonly command: readonly string[] }
  | { readonly kind: AgentCliKind; readonly provider: string; readonly model: string | null; readonly maxTurns: number | null; readonly mcp: boolean }
  | { readonly kind: 'llm'; readonly provider: string; readonly model: string; readonly maxTurns: number };

/** Limits of a budget: tokens (input + output) and US dollars; null = no limit. */
export interface BudgetLimits {
  readonly tokens: number | null;
  readonly costUsd: number | null;
}

/**
 * What a template's agents are: `manager` or `worker`. A template that says `role:` makes
 * `template:<name>` a member of `role:<role>` in the policy; one that does not is a worker for
 * Warren's own checks and gets only what the policy file gives `template:<name>`.
 */
export type TemplateRole = 'manager' | 'worker';

/**
 * A manager's quotas: at most `maxWorkers` live workers (agents it started that are starting or
 * running) and `maxSubtasks` open subtasks (created by it and not ended) at once, and the templates
 * (names) it may start workers of.
 */
export interface ManagerQuotas {
  readonly maxWorkers: number;
  readonly maxSubtasks: number;
  readonly templates: readonly string[];
}

/** A validated template with sizes in bytes and durations in ms. */
export interface AgentTemplate {
  readonly name: string;
  /** `worker` (the default) or `manager`; see {@link TemplateRole}. */
  readonly role: TemplateRole;
  /**
   * The role the template's file declares (`role:`), which the policy then gives `template:<name>`;
   * null when it declares none (the policy file alone decides what the template's agents may do).
   */
  readonly policyRole: TemplateRole | null;
  /** A manager's quotas (defaults 2 workers, 10 subtasks, no templates); null for a worker. */
  readonly manager: ManagerQuotas | null;
  readonly description: string;
  readonly capabilities: readonly string[];
  /** What the agent runner runs per task; see {@link TemplateRuntime}. */
  readonly runtime: TemplateRuntime;
  /**
   * What the LLM gateway allows this template's agents: the providers they may call and the
   * budgets (tokens, US dollars) per execution, per agent and UTC day, and per template and UTC
   * day. Null for a template with neither an agent runtime nor an `llm` block: its agents get no
   * gateway.
   */
  readonly llm: {
    readonly providers: readonly string[];
    readonly budget: { readonly task: BudgetLimits; readonly agentDay: BudgetLimits; readonly templateDay: BudgetLimits };
  } | null;
  /** Files copied into a new home: `path` relative to the home; `sourcePath` absolute on the host, or `content`. */
  readonly homeSeed: readonly { readonly path: string; readonly sourcePath?: string; readonly content?: string }[];
  /** The git repository tasks work on (a URL, or an absolute host path) and the ref their branches start from (null: its HEAD). */
  readonly repository: { readonly source: string; readonly base: string | null } | null;
  /** Environment variables of the agent filled from its secrets: variable → secret name. */
  readonly secretEnv: Readonly<Record<string, string>>;
  /** Per-agent overrides by agent name: the model, and resources (bytes for memory). */
  readonly agentOverrides: Readonly<Record<string, { readonly model?: string; readonly resources?: { readonly memoryMaxBytes?: number; readonly pidsMax?: number; readonly cpuWeight?: number } }>>;
  /** Wall-clock limit of one task execution, in ms. */
  readonly taskTimeoutMs: number;
  readonly resources: {
    readonly memoryMaxBytes: number;
    readonly pidsMax: number;
    /** Relative CPU weight, 1..10000, 100 = an ordinary process (cgroup v2 `cpu.weight` scale). */
    readonly cpuWeight: number;
    readonly nofile: number;
    readonly fsizeBytes: number;
    readonly tmpfsBytes: number;
  };
  /**
   * The watchdog's thresholds: an agent whose cgroup stays over any of them for longer than
   * `graceMs` is killed as a whole tree (exit kind `watchdog`), and its task is re-queued.
   */
  readonly watchdog: {
    readonly memoryBytes: number;
    /** CPU use in cores; null = not watched. */
    readonly cpuCores: number | null;
    readonly pids: number;
    readonly graceMs: number;
  };
  /**
   * Size of the agent's home quota (a loop-mounted ext4 image, nosuid,nodev,noexec, mounted while
   * the agent runs), in bytes; null = no quota, the home is a plain directory.
   */
  readonly homeQuotaBytes: number | null;
  /**
   * Largest size of the agent's home (`resources.homeLimit`, default 1 GiB), in bytes: the
   * supervisor measures the home of an agent running a task about once a second, and one over it
   * is stopped and its task fails with the reason `disk`; the files stay in the home. RLIMIT_FSIZE
   * (`fsizeBytes`) is at most this.
   */
  readonly homeLimitBytes: number;
  readonly maxInstances: number;
  readonly wipPerInstance: number;
  readonly lifecycle: LifecycleMode;
  /**
   * Agents of this template kept started, ready and idle ahead of demand (0 = none; at most
   * `maxInstances` count): a task placed on one skips the sandbox and runner start. An `autodelete`
   * agent of the pool takes one task and is deleted; the pool is refilled with a fresh sandbox and
   * account. The warm-pool pattern of kubernetes-sigs/agent-sandbox (SandboxWarmPool).
   */
  readonly warmPool: number;
  /**
   * Agents of this template prepared ahead with no process (0 = none): the name and uid taken, the
   * account and home made and seeded, the NATS user and the agent's consumers made, so a start on
   * demand pays only for its sandbox. They are not instances (`maxInstances` counts none of them),
   * take no task until one is started on demand, and are deleted at shutdown, when the template
   * goes or lowers this, and at the next start after a kill. Default 1 for an `autodelete` template
   * without a warm pool, whose every task starts an agent; else 0. Ignored for pods and for homes
   * with a quota (`resources.home`: the image is mounted at the start).
   */
  readonly prepared: number;
  /**
   * `full` (the default) or a weaker mode asked for by name (`unsafe-no-cgroups`: runs on a host
   * without cgroups, so without memory, pids and cpu limits). Agents of an unsafe template are
   * marked UNSAFE in the log, the audit and `warren agents`.
   */
  readonly isolation: 'full' | 'unsafe-no-cgroups';
  /**
   * What happens when an execution fails or times out, in Temporal's terms: attempt n (1-based)
   * that fails is retried after min(initialIntervalMs × backoffCoefficient^(n−1), maximumIntervalMs)
   * while n < maximumAttempts. Default: no retry (maximumAttempts 1).
   */
  readonly retry: RetryPolicy;
  /** How long a `sleep` agent stays up with no work before it is put to sleep, in ms. */
  readonly sleepAfterIdleMs: number;
  /** Names of supervisor environment variables passed into the sandbox. */
  readonly environment: readonly string[];
  /** Read-only binds: `source` relative to the repository root, `target` under /repo. */
  readonly mounts: readonly { readonly source: string; readonly target: string }[];
  /**
   * Where its agents run: `nodes` (the supervisor's own host and `warren node` hosts; a node must
   * carry every one of `labels` with the exact value) or `kubernetes` (pods; `labels` is empty).
   */
  readonly placement: TemplatePlacement;
  /** The file it came from. */
  readonly path: string;
}

/** Where a template's agents run; see {@link AgentTemplate.placement}. */
export interface TemplatePlacement {
  readonly target: 'nodes' | 'kubernetes';
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Parses and validates one template file.
 * @param path shown in errors (relative paths read best).
 * @param baseDir what `home.seed[].source` and a `repository.source` path are relative to (the templates' folder); default `path`'s folder.
 * @throws {TemplateError} with the line of the offending key: syntax errors, unknown keys, wrong
 *   types, bad units.
 */
export function parseTemplate(text: string, path: string, baseDir: string = dirname(path)): AgentTemplate {
  const source = parseYamlSource(text);
  if (!('doc' in source)) {
    throw new TemplateError(path, source.line, undefined, `is not valid YAML: ${source.message}`);
  }
  const parsed = TemplateFile.safeParse(source.value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let issuePath = issue.path;
    let detail = issue.message;
    if (issue.code === 'unrecognized_keys') {
      issuePath = [...issue.path, issue.keys[0]!];
      detail = `is not a template key (known keys: ${knownKeys(issue.path)})`;
    }
    const key = issuePath.map(String).join('.') || undefined;
    throw new TemplateError(path, lineOf(source, issuePath), key, detail);
  }
  const t = parsed.data;
  if (t.warmPool > 0 && t.lifecycle === 'sleep') {
    throw new TemplateError(path, lineOf(source, ['warmPool']), 'warmPool', "cannot be used with lifecycle 'sleep' (a warm agent would be put to sleep and started again)");
  }
  if (t.manager !== undefined && t.role !== 'manager') {
    throw new TemplateError(path, lineOf(source, ['manager']), 'manager', "applies only to a template with 'role: manager'");
  }
  if (t.prepared !== undefined && t.prepared > 0 && t.lifecycle === 'persistent') {
    throw new TemplateError(path, lineOf(source, ['prepared']), 'prepared', "applies to agents started on demand (lifecycle 'sleep' or 'autodelete'), not to 'persistent' ones");
  }
  if (t.warmPool > t.maxInstances) {
    throw new TemplateError(path, lineOf(source, ['warmPool']), 'warmPool', `is ${t.warmPool}, more than maxInstances (${t.maxInstances})`);
  }
  /** Converts a user unit, turning a `ConfigError` into a `TemplateError` at the key's line. */
  const unit = (key: string, value: string | number, parse: typeof parseBytes): number => {
    try {
      return parse(value, key);
    } catch (error) {
      const detail = error instanceof ConfigError ? error.message.slice(key.length + 2) : String(error);
      throw new TemplateError(path, lineOf(source, key.split('.')), key, detail);
    }
  };
  /**
   * A size in bytes: a YAML number must be a whole number of bytes, and the result must lie within
   * the range the sandbox accepts ({@link SIZE_LIMITS}), so that a template that could never start
   * is refused here, at its line.
   */
  const size = (key: string, value: string | number): number => {
    const fail = (detail: string): never => {
      throw new TemplateError(path, lineOf(source, key.split('.')), key, detail);
    };
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      fail(`size ${value} must be a whole number of bytes (or a size with a unit, such as 512MiB)`);
    }
    const bytes = unit(key, value, parseBytes);
    const [min, max] = SIZE_LIMITS[key] ?? [1, Number.MAX_SAFE_INTEGER];
    if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) fail(`size ${value} must be between ${min} and ${max} bytes`);
    return bytes;
  };
  if (t.runtime.kind === 'exec' && !posix.isAbsolute(t.runtime.command[0]!)) {
    throw new TemplateError(
      path,
      lineOf(source, ['runtime', 'command', 0]),
      'runtime.command.0',
      `'${t.runtime.command[0]}' must be an absolute path inside the sandbox (the templates' programs are at ${AGENTS_BIN_IN_SANDBOX})`,
    );
  }
  if (t.placement.target === 'kubernetes' && Object.keys(t.placement.labels).length > 0) {
    throw new TemplateError(path, lineOf(source, ['placement', 'labels']), 'placement.labels', "applies only to 'target: nodes' (pods are placed by Kubernetes)");
  }
  const role: TemplateRole = t.role ?? 'worker';
  const quotas = role === 'manager' ? { maxWorkers: t.manager?.maxWorkers ?? 2, maxSubtasks: t.manager?.maxSubtasks ?? 10, templates: t.manager?.templates ?? [] } : null;
  if (quotas?.templates.includes(t.name)) {
    throw new TemplateError(path, lineOf(source, ['manager', 'templates']), 'manager.templates', `names the manager itself ('${t.name}'): a manager starts workers of other templates`);
  }
  return {
    name: t.name,
    role,
    policyRole: t.role ?? null,
    manager: quotas,
    description: t.description,
    capabilities: t.capabilities,
    runtime: templateRuntime(t.runtime),
    llm: llmRules(t),
    homeSeed: t.home.seed.map((f) => {
      if (posix.isAbsolute(f.path) || posix.normalize(f.path).startsWith('..')) {
        throw new TemplateError(path, lineOf(source, ['home', 'seed']), 'home.seed.path', `'${f.path}' must be a path inside the home`);
      }
      return f.source !== undefined ? { path: posix.normalize(f.path), sourcePath: resolve(baseDir, f.source) } : { path: posix.normalize(f.path), content: f.content ?? '' };
    }),
    // A URL (scheme://, or scp-like user@host:path) stays as written; a path is relative to the templates' folder.
    repository: t.repository
      ? { source: /^[a-z][a-z0-9+.-]*:\/\/|^[^/]+@[^/]+:/i.test(t.repository.source) ? t.repository.source : resolve(baseDir, t.repository.source), base: t.repository.base ?? null }
      : null,
    secretEnv: t.secrets.env,
    agentOverrides: Object.fromEntries(
      Object.entries(t.agents).map(([agent, o]) => {
        if (!agent.startsWith(`${t.name}-`)) {
          throw new TemplateError(path, lineOf(source, ['agents', agent]), `agents.${agent}`, `is not an agent of template '${t.name}' (its agents are ${t.name}-1, ${t.name}-2, …)`);
        }
        const resources = o.resources
          ? {
              ...(o.resources.memory !== undefined ? { memoryMaxBytes: size('resources.memory', o.resources.memory) } : {}),
              ...(o.resources.pids !== undefined ? { pidsMax: o.resources.pids } : {}),
              ...(o.resources.cpu !== undefined ? { cpuWeight: o.resources.cpu } : {}),
            }
          : undefined;
        return [agent, { ...(o.model !== undefined ? { model: o.model } : {}), ...(resources ? { resources } : {}) }];
      }),
    ),
    taskTimeoutMs: unit('runtime.timeout', t.runtime.timeout, parseDurationMs),
    resources: {
      memoryMaxBytes: size('resources.memory', t.resources.memory),
      pidsMax: t.resources.pids,
      cpuWeight: t.resources.cpu,
      nofile: t.resources.nofile,
      fsizeBytes: Math.min(size('resources.fileSize', t.resources.fileSize), size('resources.homeLimit', t.resources.homeLimit)),
      tmpfsBytes: size('resources.tmp', t.resources.tmp),
    },
    watchdog: {
      memoryBytes: /%$/.test(String(t.watchdog.memory))
        ? Math.floor((size('resources.memory', t.resources.memory) * Number(String(t.watchdog.memory).slice(0, -1))) / 100)
        : size('watchdog.memory', t.watchdog.memory),
      cpuCores: t.watchdog.cpu ?? null,
      pids: t.watchdog.pids ?? Math.max(1, Math.floor(t.resources.pids * 0.9)),
      graceMs: unit('watchdog.grace', t.watchdog.grace, parseDurationMs),
    },
    homeQuotaBytes: t.resources.home === undefined ? null : size('resources.home', t.resources.home),
    homeLimitBytes: size('resources.homeLimit', t.resources.homeLimit),
    maxInstances: t.maxInstances,
    wipPerInstance: t.wipPerInstance,
    lifecycle: t.lifecycle,
    warmPool: t.warmPool,
    prepared: t.placement.target === 'kubernetes' || t.resources.home !== undefined ? 0 : (t.prepared ?? (t.lifecycle === 'autodelete' && t.warmPool === 0 ? 1 : 0)),
    isolation: t.isolation,
    retry: {
      initialIntervalMs: unit('retry.initialInterval', t.retry.initialInterval, parseDurationMs),
      backoffCoefficient: t.retry.backoffCoefficient,
      maximumIntervalMs: unit('retry.maximumInterval', t.retry.maximumInterval, parseDurationMs),
      maximumAttempts: t.retry.maximumAttempts,
    },
    sleepAfterIdleMs: unit('sleepAfterIdle', t.sleepAfterIdle, parseDurationMs),
    environment: t.environment,
    mounts: t.mounts,
    placement: { target: t.placement.target, labels: t.placement.labels },
    path,
  };
}

/** The runtime of a parsed template file, with absent optional fields as null. */
function templateRuntime(r: TemplateFile['runtime']): TemplateRuntime {
  switch (r.kind) {
    case 'shell':
      return { kind: 'shell' };
    case 'exec':
      return { kind: 'exec', command: r.command };
    case 'llm':
      return { kind: 'llm', provider: r.provider, model: r.model, maxTurns: r.maxTurns };
    default:
      return { kind: r.kind, provider: r.provider, model: r.model ?? null, maxTurns: r.maxTurns ?? null, mcp: r.mcp };
  }
}

/** The gateway's rules of a parsed template file ({@link AgentTemplate.llm}). */
function llmRules(t: TemplateFile): AgentTemplate['llm'] {
  const runtimeProvider = 'provider' in t.runtime ? t.runtime.provider : undefined;
  if (t.llm === undefined && runtimeProvider === undefined) return null;
  const limits = (l: { tokens?: number | undefined; cost?: number | undefined } | undefined): BudgetLimits => ({ tokens: l?.tokens ?? null, costUsd: l?.cost ?? null });
  const providers = t.llm?.providers ?? (runtimeProvider !== undefined ? [runtimeProvider] : []);
  return {
    providers: runtimeProvider !== undefined && !providers.includes(runtimeProvider) ? [runtimeProvider, ...providers] : providers,
    budget: { task: limits(t.llm?.budget.task), agentDay: limits(t.llm?.budget.agentDay), templateDay: limits(t.llm?.budget.templateDay) },
  };
}

function knownKeys(path: readonly PropertyKey[]): string {
  let schema: z.ZodType = TemplateFile;
  for (const key of path) {
    const shape = (schema as unknown as { shape?: Record<string, z.ZodType> }).shape;
    const inner = shape?.[String(key)];
    if (!inner) break;
    schema = unwrap(inner);
  }
  const shape = (unwrap(schema) as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape).join(', ') : '(none)';
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema as unknown as { def?: { innerType?: z.ZodType; element?: z.ZodType } };
  while (current.def?.innerType ?? current.def?.element) {
    current = (current.def.innerType ?? current.def.element) as unknown as typeof current;
  }
  return current as unknown as z.ZodType;
}

/** The outcome of {@link loadTemplates}: the valid templates and one error per invalid file. */
export interface TemplateSet {
  readonly templates: ReadonlyMap<string, AgentTemplate>;
  readonly errors: readonly TemplateError[];
}

/**
 * Loads every `*.yaml`/`*.yml` file directly in `dir` as a template. A bad file is one error and
 * is left out; two files with one `name` make the later (by file name) an error.
 * @param displayRoot paths in errors are shown relative to it.
 */
export async function loadTemplates(dir: string, displayRoot = dir): Promise<TemplateSet> {
  const templates = new Map<string, AgentTemplate>();
  const errors: TemplateError[] = [];
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const file of files) {
    const path = relative(displayRoot, join(dir, file)) || file;
    try {
      const template = parseTemplate(await readFile(join(dir, file), 'utf8'), path, resolve(dir));
      const earlier = templates.get(template.name);
      if (earlier) {
        throw new TemplateError(path, 1, 'name', `'${template.name}' is already defined by ${earlier.path}`);
      }
      templates.set(template.name, template);
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      errors.push(error);
    }
  }
  // A manager may only start workers of templates that loaded, and never of another manager.
  const loaded = new Map(templates);
  for (const template of loaded.values()) {
    const bad = template.manager?.templates.find((t) => loaded.get(t)?.role !== 'worker');
    if (bad === undefined) continue;
    const why = loaded.has(bad) ? `'${bad}' is a manager, not a worker template` : `'${bad}' is not a loaded template (known: ${[...loaded.keys()].sort().join(', ')})`;
    errors.push(new TemplateError(template.path, 1, 'manager.templates', why));
    templates.delete(template.name);
  }
  return { templates, errors };
}

/**
 * The templates some manager lists in `manager.templates`: their agents are started by managers
 * (`start_worker`), not by the planner on demand.
 */
export function managedTemplates(templates: Iterable<AgentTemplate>): Set<string> {
  const managed = new Set<string>();
  for (const t of templates) for (const name of t.manager?.templates ?? []) managed.add(name);
  return managed;
}
