/**
 * Where the SDK's program is, on the host and in the sandbox, and where the bus socket is. Node's
 * built-ins only.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The agent's bus socket inside its sandbox (served by the supervisor as the channel service `bus.sock`). */
export const BUS_SOCKET_PATH = '/run/warren/bus.sock';

/** The environment variable that names the bus socket for programs of a task; default {@link BUS_SOCKET_PATH}. */
export const BUS_SOCKET_ENV = 'WARREN_BUS_SOCKET';

/** The bundled CLI's file name. */
export const WARREN_BUS_BUNDLE_NAME = 'warren-bus.mjs';

/** Where the supervisor binds {@link agentSdkDistDir} (read-only) inside the sandbox. */
export const AGENT_SDK_DIR_IN_SANDBOX = '/opt/warren/agent-sdk';

/** The directory inside the sandbox that holds the `warren-bus` shell wrapper: put it on the task's PATH. */
export const AGENT_SDK_BIN_IN_SANDBOX = `${AGENT_SDK_DIR_IN_SANDBOX}/bin`;

/**
 * The package's `dist` directory on the host (absolute), which holds the bundle and `bin/warren-bus`:
 * the directory the supervisor binds at {@link AGENT_SDK_DIR_IN_SANDBOX}.
 */
export function agentSdkDistDir(): string {
  // This file is `src/paths.ts` or `dist/lib/paths.js`.
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'lib')) ? resolve(here, '..') : resolve(here, '..', 'dist');
}

/** The bundle on the host: `packages/agent-sdk/dist/warren-bus.mjs`, made by `npm run build`. */
export function warrenBusBundlePath(): string {
  return join(agentSdkDistDir(), WARREN_BUS_BUNDLE_NAME);
}
