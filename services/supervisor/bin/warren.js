#!/usr/bin/env node
// The `warren` command. Runs the built CLI (npm run build first).
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv);
