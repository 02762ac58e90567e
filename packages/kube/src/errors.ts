import { WarrenError } from '@warren/core';

/**
 * An `AgentPodSpec` field is invalid (`WARREN_KUBE_SPEC`). `field` is its dotted path in the spec
 * (`resources.memoryMaxBytes`, `env.HOME`, `brokerEndpoints[0].cidr`); the message starts with it.
 */
export class AgentPodSpecError extends WarrenError {
  constructor(
    /** The field's dotted path in the `AgentPodSpec`, such as `uid` or `labels.team`. */
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_KUBE_SPEC', `AgentPodSpec.${field}: ${message}`, options);
  }
}

/**
 * A manifest fails `assertValidManifest` (`WARREN_KUBE_MANIFEST`): a schema error or an unknown
 * field. `issues` lists every problem with its field path; the message names the first ones.
 */
export class ManifestError extends WarrenError {
  constructor(
    /** `<kind>/<name>` of the manifest, or `manifest` when it has neither. */
    readonly manifest: string,
    /** Every problem found, in document order. */
    readonly issues: readonly { readonly path: string; readonly message: string }[],
  ) {
    const shown = issues.slice(0, 3).map((i) => `${i.path}: ${i.message}`);
    if (issues.length > 3) shown.push(`and ${issues.length - 3} more`);
    super('WARREN_KUBE_MANIFEST', `${manifest} is not a valid manifest: ${shown.join('; ')}`);
  }
}
