/**
 * Kubernetes field paths as the API server writes them in `Status` causes and Pod Security
 * admission messages (`k8s.io/apimachinery/pkg/util/validation/field.Path`): fields joined by `.`,
 * list indexes and map keys in brackets: `spec.containers[0].securityContext.privileged`,
 * `metadata.labels[warren.dev/agent]`.
 */
export type FieldPathSegment = string | number;

/** Formats segments as a field path; a string segment that follows a map is written as `[key]`. */
export function formatFieldPath(segments: readonly FieldPathSegment[], mapKeys: ReadonlySet<number> = new Set()): string {
  let out = '';
  segments.forEach((segment, index) => {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (mapKeys.has(index)) out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  });
  return out;
}
