// The two cores are shared with other people's builds and tests. Before a timed phase the bench waits,
// for a bounded time, until the rest of the machine is nearly idle, and records how busy it still was.
import { busiestOthers, processTable } from './cpu-time.js';

export interface QuietWait {
  waitedS: number;
  /** CPU of processes not ours over the last sampling window, in cores. */
  otherCores: number;
  quiet: boolean;
}

const WINDOW_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples 2 s windows until others use at most `thresholdCores`, or `maxWaitS` has passed. */
export async function waitForQuiet(
  ours: ReadonlySet<number>,
  maxWaitS: number,
  thresholdCores = 0.25,
): Promise<QuietWait> {
  const start = performance.now();
  for (;;) {
    const before = processTable();
    await sleep(WINDOW_MS);
    const used = busiestOthers(before, processTable(), ours, 10_000).reduce((t, o) => t + o.seconds, 0);
    const otherCores = Math.round((used / (WINDOW_MS / 1000)) * 100) / 100;
    const waitedS = Math.round((performance.now() - start) / 100) / 10;
    if (otherCores <= thresholdCores) return { waitedS, otherCores, quiet: true };
    if (waitedS >= maxWaitS) return { waitedS, otherCores, quiet: false };
  }
}
