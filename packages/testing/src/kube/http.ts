/**
 * HTTP plumbing of the fake Kubernetes API server: JSON and `Status` answers, request bodies, list
 * bodies with selectors and paging, and the options of a DELETE.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { record, StatusError, type FakeKubeContext, type Json } from './context.js';
import type { DeleteOptions } from './objects.js';
import type { ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector, SelectorSyntaxError } from './selectors.js';
import { badRequestStatus, tooLargeStatus, type KubeStatus } from './status.js';
import type { KubeObject } from './types.js';

/** The API server's default request body limit, 3 MiB (apiserver `MaxRequestBodyBytes`). */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Answers with a JSON body. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache, private' });
  res.end(text);
}

/** Answers with a `Status` and its code. */
export function sendStatus(res: ServerResponse, status: KubeStatus): void {
  sendJson(res, status.code, status);
}

/**
 * The request body parsed as JSON; `undefined` for an empty one.
 * @throws {StatusError} 413 beyond `MAX_BODY_BYTES`, 400 for a body that is not JSON.
 */
export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new StatusError(tooLargeStatus(MAX_BODY_BYTES));
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new StatusError(badRequestStatus(`couldn't get version/kind; json parse error: ${(error as Error).message}`));
  }
}

/** A list of copies without `kind`/`apiVersion` on the items, as typed lists are written. */
export const listBody = (ctx: FakeKubeContext, type: ResourceType, items: KubeObject[], continueToken?: string, remaining?: number): Json => ({
  kind: `${type.kind}List`,
  apiVersion: type.apiVersion,
  metadata: {
    resourceVersion: String(ctx.store.revision),
    ...(continueToken === undefined ? {} : { continue: continueToken }),
    ...(remaining === undefined ? {} : { remainingItemCount: remaining }),
  },
  items: items.map((item) => {
    const copy = structuredClone(item);
    delete copy.kind;
    delete copy.apiVersion;
    return copy;
  }),
});

/**
 * The `labelSelector` and `fieldSelector` of a query as one predicate.
 * @throws {StatusError} 400 for a selector that does not parse or a field the type cannot select on.
 */
export function selectorsOf(type: ResourceType, query: URLSearchParams): ((object: KubeObject) => boolean) {
  try {
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', ['metadata.name', 'metadata.namespace', ...type.selectableFields]);
    return (object) => labels(object.metadata?.labels) && fields(object);
  } catch (error) {
    if (error instanceof SelectorSyntaxError) throw new StatusError(badRequestStatus(error.message));
    throw error;
  }
}

/**
 * Answers a list: selectors, then `continue` and `limit` paging.
 * @throws {StatusError} 400 for a bad selector or `continue` token.
 */
export function list(ctx: FakeKubeContext, res: ServerResponse, type: ResourceType, namespace: string, query: URLSearchParams): void {
  const matches = selectorsOf(type, query);
  let items = ctx.store.list(type, namespace).filter(matches);
  const token = query.get('continue');
  if (token !== null && token !== '') {
    let after: unknown;
    try {
      after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Json).after;
    } catch {
      after = undefined;
    }
    if (typeof after !== 'string') throw new StatusError(badRequestStatus('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)'));
    items = items.filter((item) => `${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}` > after);
  }
  const limit = Number(query.get('limit') ?? '0');
  if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
    const page = items.slice(0, limit);
    const last = page[page.length - 1];
    const next = Buffer.from(JSON.stringify({ after: `${last?.metadata?.namespace ?? ''}/${last?.metadata?.name ?? ''}`, rv: ctx.store.revision })).toString('base64url');
    sendJson(res, 200, listBody(ctx, type, page, next, items.length - limit));
    return;
  }
  sendJson(res, 200, listBody(ctx, type, items));
}

/**
 * The options of a DELETE, from the query and a `DeleteOptions` body.
 * @throws {StatusError} 400 for an unknown `propagationPolicy` or a bad body.
 */
export async function deleteOptionsOf(req: IncomingMessage, query: URLSearchParams): Promise<DeleteOptions> {
  const body = record(await readBody(req));
  const graceText = query.get('gracePeriodSeconds');
  const grace = graceText !== null ? Number(graceText) : typeof body.gracePeriodSeconds === 'number' ? body.gracePeriodSeconds : undefined;
  const policy = query.get('propagationPolicy') ?? body.propagationPolicy ?? (body.orphanDependents === true ? 'Orphan' : 'Background');
  if (policy !== 'Orphan' && policy !== 'Background' && policy !== 'Foreground') {
    throw new StatusError(badRequestStatus(`propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`));
  }
  const dryRun = query.getAll('dryRun').includes('All') || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
  const pre = record(body.preconditions);
  return {
    ...(grace === undefined || !Number.isFinite(grace) ? {} : { gracePeriodSeconds: grace }),
    propagationPolicy: policy,
    dryRun,
    ...(body.preconditions === undefined
      ? {}
      : { preconditions: { ...(typeof pre.uid === 'string' ? { uid: pre.uid } : {}), ...(typeof pre.resourceVersion === 'string' ? { resourceVersion: pre.resourceVersion } : {}) } }),
  };
}
