/**
 * Kubernetes `Status` bodies (meta/v1 `Status`), written as the API server writes them
 * (k8s.io/apimachinery/pkg/api/errors: `NewNotFound`, `NewAlreadyExists`, `NewConflict`,
 * `NewInvalid`, `NewForbidden`, `NewResourceExpired`, `NewBadRequest`, `NewMethodNotSupported`).
 */

/** One entry of `details.causes` in a `Status` (meta/v1 `StatusCause`). */
export interface KubeStatusCause {
  /** A machine-readable reason, such as `FieldValueRequired` or `FieldValueInvalid`. */
  readonly reason: string;
  /** The field error's text without the field, such as `Required value`. */
  readonly message: string;
  /** The field's path, such as `spec.containers[0].image`. */
  readonly field: string;
}

/** A meta/v1 `Status` object as the API server sends it in error answers and watch `ERROR` events. */
export interface KubeStatus {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure' | 'Success';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: {
    readonly name?: string;
    readonly group?: string;
    readonly kind?: string;
    readonly uid?: string;
    readonly causes?: readonly KubeStatusCause[];
  };
  /** The HTTP status code it is sent with. */
  readonly code: number;
}

/** The group and plural a `Status`'s `details` and messages name a resource by. */
export interface ResourceName {
  /** API group, `''` for the core group. */
  readonly group: string;
  /** Plural resource name, such as `pods`. */
  readonly plural: string;
}

/** `pods` or `networkpolicies.networking.k8s.io`: how `schema.GroupResource.String()` writes a resource. */
export function qualifiedResource(resource: ResourceName): string {
  return resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`;
}

function failure(code: number, reason: string, message: string, details?: KubeStatus['details']): KubeStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

function detailsOf(resource: ResourceName, name: string): NonNullable<KubeStatus['details']> {
  return { name, ...(resource.group === '' ? {} : { group: resource.group }), kind: resource.plural };
}

/** 404 NotFound: `pods "x" not found`. */
export function notFoundStatus(resource: ResourceName, name: string): KubeStatus {
  return failure(404, 'NotFound', `${qualifiedResource(resource)} "${name}" not found`, detailsOf(resource, name));
}

/** 409 AlreadyExists: `pods "x" already exists`. */
export function alreadyExistsStatus(resource: ResourceName, name: string): KubeStatus {
  return failure(409, 'AlreadyExists', `${qualifiedResource(resource)} "${name}" already exists`, detailsOf(resource, name));
}

/** 409 Conflict for an update whose `metadata.resourceVersion` is not the stored one. */
export function conflictStatus(resource: ResourceName, name: string): KubeStatus {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    detailsOf(resource, name),
  );
}

/**
 * 422 Invalid with one cause per field error: `Pod "x" is invalid: spec.containers: Required value`,
 * several errors in brackets joined by `, ` (apimachinery `NewInvalid` over a `field.ErrorList`).
 * @param kind the object's kind qualified by its group when it has one (`Pod`, `NetworkPolicy.networking.k8s.io`).
 */
export function invalidStatus(kind: string, group: string, name: string, causes: readonly KubeStatusCause[]): KubeStatus {
  const texts = causes.map((cause) => `${cause.field}: ${cause.message}`);
  const qualifiedKind = group === '' ? kind : `${kind}.${group}`;
  const joined = texts.length === 1 ? (texts[0] ?? '') : `[${texts.join(', ')}]`;
  return failure(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${joined}`, {
    name,
    ...(group === '' ? {} : { group }),
    kind,
    causes,
  });
}

/** 403 Forbidden: `pods "x" is forbidden: <why>`. */
export function forbiddenStatus(resource: ResourceName, name: string, why: string): KubeStatus {
  return failure(403, 'Forbidden', `${qualifiedResource(resource)} "${name}" is forbidden: ${why}`, detailsOf(resource, name));
}

/** 410 Expired: a watch or list from a resource version older than the kept history. */
export function expiredStatus(requested: number, oldest: number): KubeStatus {
  return failure(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

/** 400 BadRequest with the given message. */
export function badRequestStatus(message: string): KubeStatus {
  return failure(400, 'BadRequest', message);
}

/** 405 MethodNotAllowed: `the server does not allow this method on the requested resource`. */
export function methodNotAllowedStatus(): KubeStatus {
  return failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

/** 404 NotFound for a path the server does not serve, as the API server answers it. */
export function pathNotFoundStatus(): KubeStatus {
  return failure(404, 'NotFound', 'the server could not find the requested resource');
}

/** 401 Unauthorized for a request without the bearer token. */
export function unauthorizedStatus(): KubeStatus {
  return failure(401, 'Unauthorized', 'Unauthorized');
}

/** 415 UnsupportedMediaType for a PATCH content type the server does not take. */
export function unsupportedMediaTypeStatus(contentType: string): KubeStatus {
  return failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${JSON.stringify(contentType)})`);
}

/** 200 Success `Status`, the answer to deleting a resource whose API does not return the deleted object. */
export function successStatus(resource: ResourceName, name: string, uid: string | undefined): KubeStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { ...detailsOf(resource, name), ...(uid === undefined ? {} : { uid }) },
    code: 200,
  };
}

/** A field error of `Required value` for `field`. */
export function requiredCause(field: string, detail?: string): KubeStatusCause {
  return { reason: 'FieldValueRequired', message: detail === undefined ? 'Required value' : `Required value: ${detail}`, field };
}

/** A field error of `Invalid value: <value>: <detail>` for `field`. */
export function invalidCause(field: string, value: unknown, detail: string): KubeStatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${detail}`, field };
}

/** A field error of `Duplicate value: <value>` for `field`. */
export function duplicateCause(field: string, value: unknown): KubeStatusCause {
  return { reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(value)}`, field };
}

/** A field error of `Forbidden: <detail>` for `field`. */
export function forbiddenCause(field: string, detail: string): KubeStatusCause {
  return { reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field };
}

/** 422 for a patch that does not apply (a JSON Patch `test` that fails, a path that is missing). */
export function unprocessableStatus(message: string): KubeStatus {
  return failure(422, 'Invalid', message);
}

/** 413 RequestEntityTooLarge for a body over the server's limit. */
export function tooLargeStatus(limitBytes: number): KubeStatus {
  return failure(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limitBytes}`);
}

/** 409 Conflict for a DELETE whose `preconditions` do not hold. */
export function preconditionStatus(resource: ResourceName, name: string, what: string, expected: string, actual: string): KubeStatus {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource)} "${name}": Precondition failed: ${what} in precondition: ${expected}, ${what} in object meta: ${actual}`,
    detailsOf(resource, name),
  );
}
