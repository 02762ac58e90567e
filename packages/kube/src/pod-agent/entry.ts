/**
 * The entry point of the `warren-pod-agent` bundle: runs {@link runPodAgent} and exits with its code.
 */
import { runPodAgent } from './main.js';

process.exit(await runPodAgent());
