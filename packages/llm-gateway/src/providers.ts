import { LlmGatewayError } from './errors.js';

/**
 * The wire protocols the gateway speaks with providers, as the vendors name their APIs:
 * - `openai-chat`: OpenAI Chat Completions (`POST <baseUrl>/chat/completions`);
 * - `openai-responses`: OpenAI Responses (`POST <baseUrl>/responses`);
 * - `anthropic-messages`: Anthropic Messages (`POST <baseUrl>/v1/messages`).
 * It decides how the key is sent, how usage is read from answers and the shape of error bodies.
 */
export const WireApi = {
  openaiChat: 'openai-chat',
  openaiResponses: 'openai-responses',
  anthropicMessages: 'anthropic-messages',
} as const;
export type WireApi = (typeof WireApi)[keyof typeof WireApi];

/** The wire APIs, for validation and messages. */
export const WIRE_APIS: readonly WireApi[] = Object.values(WireApi);

/** Price of a model in US dollars per million tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
}

/**
 * One LLM provider the gateway may call for agents (configured like xonovex's AgentProvider).
 */
export interface LlmProvider {
  /** The name agents use in their base URL (`/p/<name>/…`): letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  /**
   * What one gives the vendor's SDK as base URL, `http:` or `https:`: `https://api.openai.com/v1`,
   * `https://api.anthropic.com`. A request for `/p/<name>/<rest>` goes to `<baseUrl>/<rest>`.
   */
  readonly baseUrl: string;
  readonly wireApi: WireApi;
  /**
   * The provider's key, added to every forwarded request, unless the agent's access names its own
   * key for this provider (`AgentLlmAccess.apiKeys`). Never logged, never sent to an agent. Absent,
   * only agents with a key of their own may call the provider.
   */
  readonly apiKey?: string;
  /** The model an agent asks for → the model sent upstream. Models not listed pass unchanged. */
  readonly models?: Readonly<Record<string, string>>;
  /** Prices by upstream model, in USD per million tokens; a model without a price costs 0. */
  readonly prices?: Readonly<Record<string, ModelPrice>>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks a set of providers and indexes them by name.
 * @throws {LlmGatewayError} `WARREN_LLM_PROVIDER` naming the provider (by name or index) and the
 *   field: a bad or repeated name, a base URL that is not http(s) or has a query or fragment, an
 *   unknown wire API, an empty key (a missing one is allowed), a model mapping or price that is not a string or a finite
 *   number ≥ 0.
 */
export function indexProviders(providers: readonly LlmProvider[]): Map<string, LlmProvider> {
  const byName = new Map<string, LlmProvider>();
  providers.forEach((provider, index) => {
    const where = `provider ${typeof provider.name === 'string' && provider.name ? `'${provider.name}'` : `#${index}`}`;
    const fail = (field: string, message: string): never => {
      throw new LlmGatewayError('WARREN_LLM_PROVIDER', `${where}: '${field}' ${message}`);
    };
    if (typeof provider.name !== 'string' || !NAME.test(provider.name)) {
      fail('name', 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    if (byName.has(provider.name)) fail('name', 'is used by another provider');
    let url: URL | undefined;
    try {
      url = new URL(provider.baseUrl);
    } catch {
      fail('baseUrl', `is not a URL: ${String(provider.baseUrl)}`);
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') fail('baseUrl', 'must be an http: or https: URL');
    if (url && (url.search !== '' || url.hash !== '')) fail('baseUrl', 'must not have a query or a fragment');
    if (url && (url.username !== '' || url.password !== '')) fail('baseUrl', 'must not carry credentials');
    if (!WIRE_APIS.includes(provider.wireApi)) fail('wireApi', `must be one of ${WIRE_APIS.join(', ')}`);
    if (provider.apiKey !== undefined && (typeof provider.apiKey !== 'string' || provider.apiKey === '')) {
      fail('apiKey', 'must be a non-empty string when given');
    }
    for (const [from, to] of Object.entries(provider.models ?? {})) {
      if (typeof to !== 'string' || to === '') fail(`models.${from}`, 'must be a non-empty string');
    }
    for (const [model, price] of Object.entries(provider.prices ?? {})) {
      for (const side of ['input', 'output'] as const) {
        const value = (price as Partial<ModelPrice> | undefined)?.[side];
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
          fail(`prices.${model}.${side}`, 'must be a finite number ≥ 0 (USD per million tokens)');
        }
      }
    }
    byName.set(provider.name, provider);
  });
  return byName;
}

/**
 * The upstream URL of a request for `/p/<provider>/<rest>`: `<baseUrl>/<rest>` with the query.
 * @param rest the raw path after `/p/<provider>/` (may be empty), percent-encoding kept.
 * @param search the raw query with its `?`, or ''.
 * @returns the URL, or null when `rest` holds a `.` or `..` segment (plain or percent-encoded) or
 *   a backslash, which could leave the base URL's path.
 */
export function upstreamUrl(provider: LlmProvider, rest: string, search: string): URL | null {
  const segments = rest.split('/');
  for (const segment of segments) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return null;
    }
    if (decoded === '.' || decoded === '..' || decoded.includes('\\') || segment.includes('\\')) return null;
  }
  const url = new URL(provider.baseUrl);
  const basePath = url.pathname.replace(/\/+$/, '');
  url.pathname = rest === '' ? basePath || '/' : `${basePath}/${rest}`;
  url.search = search;
  return url;
}

/** USD for `inputTokens` and `outputTokens` at the provider's price of `model`; 0 when unpriced. */
export function costUsd(provider: LlmProvider, model: string, inputTokens: number, outputTokens: number): number {
  const price = provider.prices?.[model];
  if (!price) return 0;
  return (inputTokens * price.input + outputTokens * price.output) / 1_000_000;
}
