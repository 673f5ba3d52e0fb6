// Reading a process's Prometheus registry from GET /api/metrics: only the few samples the bench reports.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export async function fetchMetrics(base: string): Promise<Sample[]> {
  const res = await fetch(`${base}/api/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /api/metrics answered ${res.status}`);
  return parsePrometheusText(text);
}

/** The value of the first sample with this name and these labels, or undefined. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

export interface CacheFootprint {
  source: string;
  keys: number;
  convKeys: number;
  bytes: number;
  bytesPerKey: number;
  /** Mean cold key load (row + DEK unwrap + decrypt) inside the worker, from its histogram. */
  coldLoadMeanMs?: number;
  coldLoads?: number;
}

/** The worker cache's own byte accounting (keyfarm_cache_bytes over keyfarm_cache_size), of an all-in-one process. */
export function cacheFootprint(samples: readonly Sample[]): CacheFootprint | undefined {
  const keys = sampleValue(samples, 'keyfarm_cache_size', { cache: 'key' });
  const convKeys = sampleValue(samples, 'keyfarm_cache_size', { cache: 'conv' }) ?? 0;
  const bytes = sampleValue(samples, 'keyfarm_cache_bytes');
  if (keys === undefined || bytes === undefined || keys + convKeys === 0) return undefined;
  const loadSum = sampleValue(samples, 'keyfarm_cold_key_load_seconds_sum');
  const loads = sampleValue(samples, 'keyfarm_cold_key_load_seconds_count');
  return {
    source:
      "GET /api/metrics of the all-in-one process: keyfarm_cache_bytes / keyfarm_cache_size (the cache's own estimate)",
    keys,
    convKeys,
    bytes,
    bytesPerKey: Math.round(bytes / (keys + convKeys)),
    ...(loadSum !== undefined && loads
      ? { coldLoadMeanMs: Math.round((loadSum / loads) * 1e5) / 100, coldLoads: loads }
      : {}),
  };
}

/**
 * What the farm saw during the timed runs, from two scrapes of one process: answer time inside the api,
 * and (where the process runs workers) job batch sizes and worker time per job. Event-loop lag is
 * prom-client's view since the previous scrape, so over the runs.
 */
export interface FarmBreakdown {
  source: string;
  rpcMeanMs?: number;
  rpcAnswered?: number;
  jobs?: number;
  meanItemsPerJob?: number;
  jobMeanMs?: number;
  backpressureRejected?: number;
  rpcTimeouts?: number;
  eventLoopLagMeanMs?: number;
  eventLoopLagP99Ms?: number;
  gcSecondsPerSecond?: number;
}

function delta(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const a = sampleValue(after, name, labels);
  if (a === undefined) return undefined;
  return a - (sampleValue(before, name, labels) ?? 0);
}

function sumOver(samples: readonly Sample[], name: string): number | undefined {
  const hits = samples.filter((s) => s.name === name);
  return hits.length ? hits.reduce((t, s) => t + s.value, 0) : undefined;
}

const ms = (seconds: number) => Math.round(seconds * 1e5) / 100;

export function farmBreakdown(
  processName: string,
  before: readonly Sample[],
  after: readonly Sample[],
  wallS: number,
  rpcLabels: { door: 'http' | 'nip46'; method: string } = { door: 'http', method: 'sign_event' },
): FarmBreakdown {
  const rpcSum = delta(before, after, 'keyfarm_rpc_duration_seconds_sum', rpcLabels);
  const rpcCount = delta(before, after, 'keyfarm_rpc_duration_seconds_count', rpcLabels);
  const jobs = delta(before, after, 'keyfarm_job_items_count');
  const items = delta(before, after, 'keyfarm_job_items_sum');
  const jobSum = delta(before, after, 'keyfarm_job_duration_seconds_sum');
  const gcBefore = sumOver(before, 'keyfarm_nodejs_gc_duration_seconds_sum');
  const gcAfter = sumOver(after, 'keyfarm_nodejs_gc_duration_seconds_sum');
  const lagMean = sampleValue(after, 'keyfarm_nodejs_eventloop_lag_mean_seconds');
  const lagP99 = sampleValue(after, 'keyfarm_nodejs_eventloop_lag_p99_seconds');
  const b: FarmBreakdown = { source: `GET /api/metrics of ${processName}, before the first and after the last run` };
  if (rpcSum !== undefined && rpcCount) Object.assign(b, { rpcMeanMs: ms(rpcSum / rpcCount), rpcAnswered: rpcCount });
  if (jobs && items !== undefined && jobSum !== undefined) {
    Object.assign(b, { jobs, meanItemsPerJob: Math.round((items / jobs) * 100) / 100, jobMeanMs: ms(jobSum / jobs) });
  }
  const rejected = delta(before, after, 'keyfarm_backpressure_rejected_total', { door: rpcLabels.door });
  if (rejected !== undefined) b.backpressureRejected = rejected;
  const timeouts = delta(before, after, 'keyfarm_rpc_timeouts_total');
  if (timeouts !== undefined) b.rpcTimeouts = timeouts;
  if (lagMean !== undefined) b.eventLoopLagMeanMs = ms(lagMean);
  if (lagP99 !== undefined) b.eventLoopLagP99Ms = ms(lagP99);
  if (gcBefore !== undefined && gcAfter !== undefined && wallS > 0)
    b.gcSecondsPerSecond = Math.round(((gcAfter - gcBefore) / wallS) * 1000) / 1000;
  return b;
}
