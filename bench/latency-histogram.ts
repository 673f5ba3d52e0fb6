// Latency histograms as the open-loop wrk script reports them: per wrk thread, a count per bucket value
// in µs, each value kept to its top 7 significant bits (under 1% error; the script's bucketUs). Merged
// here across threads and read as percentiles.

/** Bucket value (µs, as a decimal string: it came from JSON) to its count. */
export type Histogram = Record<string, number>;

/** What the script does to a latency before counting it: the value with all but its top 7 bits cleared. */
export function bucketUs(us: number): number {
  let v = Math.max(0, Math.floor(us));
  let scale = 1;
  while (v >= 128) {
    v = Math.floor(v / 2);
    scale *= 2;
  }
  return v * scale;
}

export function mergeHistograms(histograms: readonly Histogram[]): Map<number, number> {
  const merged = new Map<number, number>();
  for (const h of histograms)
    for (const [bucket, count] of Object.entries(h)) {
      const value = Number(bucket);
      if (!Number.isFinite(value) || !Number.isInteger(count) || count < 0)
        throw new Error(`bad histogram entry ${bucket}: ${count}`);
      merged.set(value, (merged.get(value) ?? 0) + count);
    }
  return merged;
}

export function histogramCount(h: ReadonlyMap<number, number>): number {
  let n = 0;
  for (const c of h.values()) n += c;
  return n;
}

/**
 * The p-th percentiles (0-100, nearest rank, as bench/stats.ts's `percentile`) of a merged histogram, in
 * one pass; NaN for each when it is empty.
 */
export function histogramPercentiles(h: ReadonlyMap<number, number>, ps: readonly number[]): number[] {
  const total = histogramCount(h);
  if (total === 0) return ps.map(() => Number.NaN);
  const buckets = [...h.entries()].filter(([, c]) => c > 0).sort((a, b) => a[0] - b[0]);
  return ps.map((p) => {
    const rank = Math.min(total, Math.max(1, Math.ceil((p / 100) * total)));
    let seen = 0;
    for (const [value, count] of buckets) {
      seen += count;
      if (seen >= rank) return value;
    }
    return buckets[buckets.length - 1]![0];
  });
}

export function histogramMax(h: ReadonlyMap<number, number>): number {
  let max = Number.NaN;
  for (const [value, count] of h) if (count > 0 && !(value <= max)) max = value;
  return max;
}

export function histogramMean(h: ReadonlyMap<number, number>): number {
  let n = 0;
  let sum = 0;
  for (const [value, count] of h) {
    n += count;
    sum += value * count;
  }
  return n === 0 ? Number.NaN : sum / n;
}
