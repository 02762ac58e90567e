// A stand-in supervisor for the battery's crash test: starts one sandbox with the built
// @warren/sandbox from the spec given as JSON in argv[2], prints `spawned <pid>` and waits for
// it to end (the test kills this process with SIGKILL before that).
import { spawnSandbox } from '@warren/sandbox';

const spec = JSON.parse(process.argv[2]);
const sandbox = await spawnSandbox(spec);
process.stdout.write(`spawned ${sandbox.pid}\n`);
const exit = await sandbox.exited;
process.stdout.write(`exited ${JSON.stringify(exit)}\n`);
