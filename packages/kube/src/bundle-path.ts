/**
 * Where the `warren-pod-agent` bundle is on this host. Node's built-ins only.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundle's file name (in `packages/kube/dist/`, and in an agent image next to the runner). */
export const POD_AGENT_BUNDLE_NAME = 'warren-pod-agent.mjs';

/** Where an agent image holds the bundle: the default pod command is `node <this>`. */
export const POD_AGENT_IN_IMAGE = `/opt/warren/${POD_AGENT_BUNDLE_NAME}`;

/** The absolute path of the bundle `npm run build` writes (`packages/kube/dist/warren-pod-agent.mjs`). */
export function podAgentBundlePath(): string {
  // This file is `src/bundle-path.ts` or `dist/bundle-path.js`.
  const here = dirname(fileURLToPath(import.meta.url));
  return basename(here) === 'dist' ? join(here, POD_AGENT_BUNDLE_NAME) : resolve(here, '..', 'dist', POD_AGENT_BUNDLE_NAME);
}
