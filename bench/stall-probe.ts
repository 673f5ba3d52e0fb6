// Where a farm process's latency tail comes from: loaded into it with
// `KEYFARM_BENCH_NODE_ARGS="--import ./dist/bench/stall-probe.js"` and STALL_PROBE_DIR=DIR, it records every
// event-loop stall of at least STALL_PROBE_MIN_MS (default 4) and every garbage collection, each with its
// start on the monotonic clock in µs (the clock of the open-loop script's slow requests), to
// DIR/stalls-PID.jsonl, a line a second. Stalls are seen by a 1 ms timer that measures its own lateness.
// With STALL_PROBE_HEAP=1 it also samples allocations that survive the young generation (V8's sampling
// heap profiler without the objects scavenges collect) into DIR/heap-PID.heapprofile, rewritten every 5 s:
// what is promoted to the old generation, the scavenges' cost.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Session } from 'node:inspector';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const dir = process.env.STALL_PROBE_DIR;
const minMs = Number(process.env.STALL_PROBE_MIN_MS ?? 4);

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

if (dir) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `stalls-${process.pid}.jsonl`);
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  // performance.now() is ms since timeOrigin; this offset maps it onto the monotonic clock.
  const originUs = nowUs() - performance.now() * 1000;
  let stalls: [number, number][] = [];
  let gcs: [number, number, string][] = [];
  let expected = nowUs() + 1000;
  const tick = () => {
    const now = nowUs();
    const lateUs = now - expected;
    if (lateUs >= minMs * 1000) stalls.push([expected, lateUs]);
    expected = now + 1000;
    setTimeout(tick, 1).unref();
  };
  setTimeout(tick, 1).unref();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1;
      gcs.push([
        Math.round(originUs + e.startTime * 1000),
        Math.round(e.duration * 1000),
        GC_KINDS[kind] ?? String(kind),
      ]);
    }
  }).observe({ entryTypes: ['gc'] });
  const flush = () => {
    if (stalls.length === 0 && gcs.length === 0) return;
    appendFileSync(file, `${JSON.stringify({ at: nowUs(), stalls, gcs })}\n`);
    stalls = [];
    gcs = [];
  };
  setInterval(flush, 1000).unref();
  process.once('exit', flush);
}

if (dir && process.env.STALL_PROBE_HEAP === '1') {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: false,
  });
  setInterval(() => {
    session.post('HeapProfiler.getSamplingProfile', (err, res) => {
      if (!err) writeFileSync(path.join(dir, `heap-${process.pid}.heapprofile`), JSON.stringify(res.profile));
    });
  }, 5000).unref();
}
