/**
 * The runner as one file: `dist/<RUNNER_BUNDLE_NAME>` under the package, written by `build.ts`
 * (CommonJS, Node built-ins only). A sandbox starts it when it is there and not older than
 * `dist/main.js` (a build that skipped the bundle step), else `dist/main.js`.
 */
export const RUNNER_BUNDLE_NAME = 'runner.cjs';
