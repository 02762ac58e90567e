// A stand-in `warren exec` for the reclaim test: runs `sleep 600` as an agent through the built
// @warren/runtime (options and agent spec as JSON in argv[2] and argv[3]), prints `spawned <pid>`
// and waits; the test kills this process with SIGKILL, leaving the exec's cgroups and run directory.
import { createBubblewrapRuntime } from '@warren/runtime';

const runtime = createBubblewrapRuntime(JSON.parse(process.argv[2]));
const command = await runtime.exec(JSON.parse(process.argv[3]), ['sleep', '600'], { stdout: process.stdout, stderr: process.stderr });
process.stdout.write(`spawned ${command.pid}\n`);
await command.exited;
