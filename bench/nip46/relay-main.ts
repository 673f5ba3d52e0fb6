#!/usr/bin/env node
// The bench relay as its own process, so its CPU is counted apart from the load's: prints
// {"port": N} on stdout once listening, and its stats as JSON on SIGTERM before exiting.
import { BenchRelay } from './bench-relay.js';

const relay = new BenchRelay();
const port = await relay.start(Number(process.env.PORT ?? 0));
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.once('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify(relay.stats)}\n`);
  void relay.stop().finally(() => process.exit(0));
});
