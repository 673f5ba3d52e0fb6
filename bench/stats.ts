// Order statistics over plain number arrays: the medians of repeated runs and the percentiles of
// sequential latency samples.

/** The p-th percentile (0-100) by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** The median; the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The median over runs of each latency percentile, ms to two decimals. */
export function medianLatency(runs: readonly { latencyMs: { p50: number; p95: number; p99: number } }[]): {
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
} {
  const at = (k: 'p50' | 'p95' | 'p99') => round(median(runs.map((r) => r.latencyMs[k])), 2);
  return { p50Ms: at('p50'), p95Ms: at('p95'), p99Ms: at('p99') };
}
