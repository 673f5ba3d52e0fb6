// What /api/metrics exports: the keycast-compatible counters of API.md, the operations metrics of the
// observability issue, and the scrape-time gauges (hooks run once per scrape, a stuck hook cannot hold
// the scrape).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LATENCY_BUCKETS,
  SCRAPE_HOOK_TIMEOUT_MS,
  addScrapeHook,
  metrics,
  registry,
  watchDbPool,
} from '../../shared/metrics.js';
import { exportedMetricNames, metricNamesIn } from '../support/metric-names.js';

async function gaugeValue(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('exported metrics', () => {
  it("has API.md's keycast-compatible counters and gauges under the keyfarm_ prefix", async () => {
    const names = await exportedMetricNames();
    for (const suffix of [
      'cache_hits_total',
      'cache_misses_total',
      'cache_size',
      'nip46_requests_total',
      'nip46_processed_total',
      'nip46_queue_dropped_total',
      'http_rpc_requests_total',
      'http_rpc_auth_errors_total',
      'registrations_total',
      'logins_total',
      'login_failures_total',
    ]) {
      assert.ok(names.has(`keyfarm_${suffix}`), `keyfarm_${suffix}`);
    }
  });

  it('has what operations watch: latency per door and method, queues per shard, KeyManager, relays, DB pool, process', async () => {
    const names = await exportedMetricNames();
    for (const name of [
      'keyfarm_rpc_duration_seconds_bucket',
      'keyfarm_queue_depth',
      'keyfarm_queue_oldest_job_age_seconds',
      'keyfarm_shard_has_owner',
      'keyfarm_shards_owned',
      'keyfarm_backpressure_rejected_total',
      'keyfarm_key_manager_calls_total',
      'keyfarm_key_manager_duration_seconds_bucket',
      'keyfarm_relays_connected',
      'keyfarm_db_pool_in_use',
      'keyfarm_db_pool_idle',
      'keyfarm_db_pool_waiting',
      'keyfarm_db_pool_max',
      'keyfarm_http_requests_total',
      'keyfarm_process_cpu_seconds_total',
      'keyfarm_process_resident_memory_bytes',
      'keyfarm_nodejs_eventloop_lag_seconds',
      'keyfarm_nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(names.has(name), name);
    }
    const rpc = registry.getSingleMetric('keyfarm_rpc_duration_seconds') as unknown as { labelNames: string[] };
    assert.deepEqual([...rpc.labelNames].sort(), ['door', 'method']);
  });

  it('measures latency from 100 µs, with buckets at the HTTP (100 ms) and NIP-46 (150 ms) bounds', async () => {
    assert.equal(LATENCY_BUCKETS[0], 0.0001);
    assert.ok(LATENCY_BUCKETS.filter((b) => b < 0.001).length >= 3, 'several sub-millisecond buckets');
    assert.ok(LATENCY_BUCKETS.includes(0.1) && LATENCY_BUCKETS.includes(0.15));
    metrics.rpcDuration.observe({ door: 'http', method: 'sign_event' }, 0.0003);
    const { values } = await metrics.rpcDuration.get();
    const labels = (v: (typeof values)[number]) => v.labels as Record<string, string | number>;
    const bucket = (le: number) =>
      values.find(
        (v) =>
          v.metricName === 'keyfarm_rpc_duration_seconds_bucket' &&
          labels(v).le === le &&
          labels(v).method === 'sign_event',
      )?.value;
    assert.equal(bucket(0.00025), 0);
    assert.equal(bucket(0.0005), 1);
  });
});

describe('scrape hooks', () => {
  it('fill their gauges once per scrape, though several gauges ask', async () => {
    let runs = 0;
    const remove = addScrapeHook(() => {
      runs++;
      metrics.queueDepth.set({ shard: '7' }, 42);
    });
    try {
      const text = await registry.metrics();
      assert.equal(runs, 1);
      assert.match(text, /^keyfarm_queue_depth\{shard="7"\} 42$/m);
      await registry.metrics();
      assert.equal(runs, 2);
    } finally {
      remove();
      metrics.queueDepth.reset();
    }
  });

  it('do not hold a scrape longer than their time limit', async () => {
    const remove = addScrapeHook(() => new Promise<void>(() => undefined));
    try {
      const started = Date.now();
      const text = await registry.metrics();
      const took = Date.now() - started;
      assert.ok(took < SCRAPE_HOOK_TIMEOUT_MS * 5, `scrape took ${took} ms`);
      assert.match(text, /keyfarm_http_rpc_requests_total/);
    } finally {
      remove();
    }
  });

  it('report database pools in use, idle and waiting until they end', async () => {
    const pool = { totalCount: 7, idleCount: 2, waitingCount: 3, options: { max: 10 }, ending: false };
    const other = { totalCount: 1, idleCount: 1, waitingCount: 0, options: { max: 4 }, ending: false };
    watchDbPool(pool);
    watchDbPool(other);
    await registry.metrics();
    const before = {
      inUse: await gaugeValue('keyfarm_db_pool_in_use'),
      idle: await gaugeValue('keyfarm_db_pool_idle'),
      waiting: await gaugeValue('keyfarm_db_pool_waiting'),
      max: await gaugeValue('keyfarm_db_pool_max'),
    };
    assert.deepEqual(before, { inUse: 5, idle: 3, waiting: 3, max: 14 });
    pool.ending = true;
    other.ending = true;
    await registry.metrics();
    assert.equal(await gaugeValue('keyfarm_db_pool_in_use'), 0);
    assert.equal(await gaugeValue('keyfarm_db_pool_max'), 0);
  });
});

describe('metricNamesIn', () => {
  it('finds metric and recording rule names, not functions, labels, strings or Grafana variables', () => {
    const expr =
      'histogram_quantile(0.95, sum by (le, door) (rate(keyfarm_rpc_duration_seconds_bucket{door="http", method=~"$method"}[$__rate_interval]))) > 0.1 ' +
      'and on (door) keyfarm:rpc_requests:rate5m > 1e3 or vector(0) unless absent(keyfarm_relays_connected offset 5m)';
    assert.deepEqual(metricNamesIn(expr).sort(), [
      'keyfarm:rpc_requests:rate5m',
      'keyfarm_relays_connected',
      'keyfarm_rpc_duration_seconds_bucket',
    ]);
  });
});
