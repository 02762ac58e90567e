import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { WarrenError } from '@warren/core';
import { lineOf, parseYamlSource } from '@warren/kanban';

/** A provider file in `providers/` is invalid; `path`, `line` and `key` say where. */
export class ProviderFileError extends WarrenError {
  constructor(
    readonly path: string,
    readonly line: number,
    readonly key: string | undefined,
    detail: string,
  ) {
    super('WARREN_PROVIDER_INVALID', `${path}:${line}: ${key ? `'${key}' ` : ''}${detail}`);
  }
}

const price = z.object({ input: z.number().min(0), output: z.number().min(0) }).strict();

/**
 * The schema of a provider file: an LLM provider the gateway may forward agents' calls to, in the
 * shape of xonovex's AgentProvider (a base URL, the wire API it speaks, where its key comes from, a
 * model mapping) plus prices for the cost ledger. Unknown keys are errors.
 *
 * ```yaml
 * name: anthropic
 * baseUrl: https://api.anthropic.com       # what one gives the vendor's SDK as its base URL
 * wire: anthropic-messages                 # openai-chat | openai-responses | anthropic-messages
 * key: { secret: ANTHROPIC_API_KEY }       # a gateway secret (warren secret set <template|agent> NAME --gateway)
 * # key: { env: ANTHROPIC_API_KEY }        # or the supervisor's environment
 * models: { sonnet: claude-sonnet-4-5 }    # the name an agent asks for → the provider's
 * prices: { claude-sonnet-4-5: { input: 3, output: 15 } }   # US dollars per million tokens
 * ```
 */
export const ProviderFile = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be lowercase letters, digits and -, starting with a letter'),
    description: z.string().default(''),
    baseUrl: z
      .string()
      .url()
      .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http or https URL'),
    wire: z.enum(['openai-chat', 'openai-responses', 'anthropic-messages']),
    key: z.union([
      z.object({ secret: z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'must be a secret name: capital letters, digits and _') }).strict(),
      z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }).strict(),
    ]),
    models: z.record(z.string().min(1), z.string().min(1)).default({}),
    prices: z.record(z.string().min(1), price).default({}),
  })
  .strict();

/** A validated provider. Its key is not here: it is resolved per agent when the gateway serves it. */
export interface ProviderDef {
  readonly name: string;
  readonly description: string;
  /** No trailing slash. */
  readonly baseUrl: string;
  readonly wireApi: 'openai-chat' | 'openai-responses' | 'anthropic-messages';
  /** Where the key comes from: a gateway secret of the agent or its template, or a variable of the supervisor's environment. */
  readonly key: { readonly secret: string } | { readonly env: string };
  readonly models: Readonly<Record<string, string>>;
  /** US dollars per million input and output tokens, by the provider's model name. */
  readonly prices: Readonly<Record<string, { readonly input: number; readonly output: number }>>;
  /** The file it came from. */
  readonly path: string;
}

/** The providers that loaded, by name, and the files that did not. */
export interface ProviderSet {
  readonly providers: ReadonlyMap<string, ProviderDef>;
  readonly errors: readonly ProviderFileError[];
}

/**
 * Parses one provider file.
 * @throws {ProviderFileError} with the line of the offending key.
 */
export function parseProvider(text: string, path: string): ProviderDef {
  const source = parseYamlSource(text);
  if (!('doc' in source)) throw new ProviderFileError(path, source.line, undefined, `is not valid YAML: ${source.message}`);
  const parsed = ProviderFile.safeParse(source.value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const issuePath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    const detail = issue.code === 'unrecognized_keys' ? `is not a provider key (known keys: ${Object.keys(ProviderFile.shape).join(', ')})` : issue.message;
    throw new ProviderFileError(path, lineOf(source, issuePath), issuePath.map(String).join('.') || undefined, detail);
  }
  const p = parsed.data;
  return { name: p.name, description: p.description, baseUrl: p.baseUrl.replace(/\/+$/, ''), wireApi: p.wire, key: p.key, models: p.models, prices: p.prices, path };
}

/**
 * Loads every `*.yaml`/`*.yml` file of `dir`. A missing folder holds no providers; a bad file is
 * reported in `errors` and the others still load.
 * @param displayRoot what error paths are relative to.
 */
export async function loadProviders(dir: string, displayRoot = dir): Promise<ProviderSet> {
  const providers = new Map<string, ProviderDef>();
  const errors: ProviderFileError[] = [];
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { providers, errors };
    throw error;
  }
  for (const file of files) {
    const path = relative(displayRoot, join(dir, file)) || file;
    try {
      const provider = parseProvider(await readFile(join(dir, file), 'utf8'), path);
      const earlier = providers.get(provider.name);
      if (earlier) throw new ProviderFileError(path, 1, 'name', `'${provider.name}' is already defined by ${earlier.path}`);
      providers.set(provider.name, provider);
    } catch (error) {
      if (!(error instanceof ProviderFileError)) throw error;
      errors.push(error);
    }
  }
  return { providers, errors };
}
