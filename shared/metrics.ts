// The process's Prometheus registry and every metric Keyfarm exports. Names follow Keycast's
// (`<prefix>_cache_hits_total`, ...) with the prefix `keyfarm`.
//
// The hot path only increments counters and observes histograms. Gauges that read shared state (queue
// depth and age per shard, shard owners, the database pool) are filled at scrape time by scrape hooks.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { withDeadline } from './deadline.js';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'keyfarm_' });

const P = 'keyfarm';
/** 100 µs up to the RPC timeout, in seconds; 0.1 and 0.15 are the HTTP and NIP-46 latency bounds. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Fills gauges from shared state when the registry is scraped. */
export type ScrapeHook = () => Promise<void> | void;

/** A scrape waits this long for its hooks; a slow hook leaves its gauges as it last set them. */
export const SCRAPE_HOOK_TIMEOUT_MS = 1000;

const hooks = new Set<ScrapeHook>();
let refreshing: Promise<void> | undefined;

/** Runs every hook once per scrape: the gauges of one scrape share the run that the first of them started. */
function runScrapeHooks(): Promise<void> {
  refreshing ??= Promise.allSettled(
    [...hooks].map((h) => withDeadline(Promise.resolve().then(h), SCRAPE_HOOK_TIMEOUT_MS, 'scrape hook')),
  ).then(() => {
    refreshing = undefined;
  });
  return refreshing;
}

/** Adds a hook run before each scrape; the returned function removes it. */
export function addScrapeHook(hook: ScrapeHook): () => void {
  hooks.add(hook);
  return () => void hooks.delete(hook);
}

const scraped = { collect: runScrapeHooks };

export const metrics = {
  cacheHits: new Counter({
    name: `${P}_cache_hits_total`,
    help: 'Decrypted-key and conversation-key cache hits',
    labelNames: ['cache'],
    registers: [registry],
  }),
  cacheMisses: new Counter({
    name: `${P}_cache_misses_total`,
    help: 'Cache misses (cold loads)',
    labelNames: ['cache'],
    registers: [registry],
  }),
  cacheSize: new Gauge({
    name: `${P}_cache_size`,
    help: 'Entries held in the worker cache',
    labelNames: ['cache'],
    registers: [registry],
  }),
  cryptoBackend: new Gauge({
    name: `${P}_crypto_backend`,
    help: '1 for the curve-arithmetic backend this process runs on (native libsecp256k1 or its WASM fallback)',
    labelNames: ['backend'],
    registers: [registry],
  }),
  cacheBytes: new Gauge({
    name: `${P}_cache_bytes`,
    help: 'Bytes held in the worker cache (estimated)',
    registers: [registry],
  }),
  nip46Requests: new Counter({
    name: `${P}_nip46_requests_total`,
    help: 'NIP-46 request events received',
    registers: [registry],
  }),
  nip46Processed: new Counter({
    name: `${P}_nip46_processed_total`,
    help: 'NIP-46 requests answered',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  nip46QueueDropped: new Counter({
    name: `${P}_nip46_queue_dropped_total`,
    help: 'NIP-46 requests dropped because the shard was full',
    registers: [registry],
  }),
  httpRpcRequests: new Counter({
    name: `${P}_http_rpc_requests_total`,
    help: 'HTTP RPC requests',
    labelNames: ['method', 'status'],
    registers: [registry],
  }),
  httpRpcAuthErrors: new Counter({
    name: `${P}_http_rpc_auth_errors_total`,
    help: 'HTTP RPC requests refused for credentials',
    registers: [registry],
  }),
  /** Every HTTP route but /api/nostr, which has keyfarm_http_rpc_requests_total. */
  httpRequests: new Counter({
    name: `${P}_http_requests_total`,
    help: 'HTTP requests other than the RPC, by route pattern and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  }),
  registrations: new Counter({ name: `${P}_registrations_total`, help: 'Accounts registered', registers: [registry] }),
  logins: new Counter({ name: `${P}_logins_total`, help: 'Successful logins', registers: [registry] }),
  loginFailures: new Counter({
    name: `${P}_login_failures_total`,
    help: 'Failed logins',
    labelNames: ['reason'],
    registers: [registry],
  }),
  backpressureRejected: new Counter({
    name: `${P}_backpressure_rejected_total`,
    help: 'Requests turned away because their shard was full (HTTP 503, NIP-46 dropped)',
    labelNames: ['door'],
    registers: [registry],
  }),
  rpcDuration: new Histogram({
    name: `${P}_rpc_duration_seconds`,
    help: 'Time from accepting a request to its answer, per door (http, nip46) and method',
    labelNames: ['door', 'method'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  jobDuration: new Histogram({
    name: `${P}_job_duration_seconds`,
    help: 'Worker time per job (a micro-batch)',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  jobItems: new Histogram({
    name: `${P}_job_items`,
    help: 'Requests per job',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  }),
  coldKeyLoad: new Histogram({
    name: `${P}_cold_key_load_seconds`,
    help: 'Loading and decrypting a key that was not cached',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  keyPrefetch: new Counter({
    name: `${P}_key_prefetch_total`,
    help: 'Key prefetch hints a workers process heard, by what it did with them',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  rpcTimeouts: new Counter({ name: `${P}_rpc_timeouts_total`, help: 'Requests answered 504', registers: [registry] }),
  keyManagerCalls: new Counter({
    name: `${P}_key_manager_calls_total`,
    help: 'KeyManager wrap/unwrap calls by outcome (ok, unavailable, error)',
    labelNames: ['op', 'outcome'],
    registers: [registry],
  }),
  keyManagerDuration: new Histogram({
    name: `${P}_key_manager_duration_seconds`,
    help: 'KeyManager call latency',
    labelNames: ['op'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  shardsOwned: new Gauge({ name: `${P}_shards_owned`, help: 'Shards this worker process owns', registers: [registry] }),

  // Filled at scrape time (shared/farm/shard-metrics.ts, database/pool.ts).
  queueDepth: new Gauge({
    name: `${P}_queue_depth`,
    help: 'Items waiting or running per shard (what backpressure counts)',
    labelNames: ['shard'],
    registers: [registry],
    ...scraped,
  }),
  queueOldestJobAge: new Gauge({
    name: `${P}_queue_oldest_job_age_seconds`,
    help: 'Age of the oldest job waiting or running per shard; 0 when none',
    labelNames: ['shard'],
    registers: [registry],
    ...scraped,
  }),
  shardHasOwner: new Gauge({
    name: `${P}_shard_has_owner`,
    help: '1 when a worker holds the lease of the shard, 0 when none does',
    labelNames: ['shard'],
    registers: [registry],
    ...scraped,
  }),
  dbPoolInUse: new Gauge({
    name: `${P}_db_pool_in_use`,
    help: 'PostgreSQL pool clients checked out',
    registers: [registry],
    ...scraped,
  }),
  dbPoolIdle: new Gauge({
    name: `${P}_db_pool_idle`,
    help: 'PostgreSQL pool clients connected and idle',
    registers: [registry],
    ...scraped,
  }),
  dbPoolWaiting: new Gauge({
    name: `${P}_db_pool_waiting`,
    help: 'Queries waiting for a PostgreSQL pool client',
    registers: [registry],
    ...scraped,
  }),
  dbPoolMax: new Gauge({
    name: `${P}_db_pool_max`,
    help: 'PostgreSQL pool size limit (DB_POOL_SIZE)',
    registers: [registry],
    ...scraped,
  }),

  /** New bunker URLs handed out, by whether a relay-ingest listened first (shared/nip46/listening.ts). */
  bunkerListenWait: new Counter({
    name: `${P}_bunker_listen_wait_total`,
    help: 'New bunker URLs handed out by the api, by outcome of the wait for relay-ingest to listen: listening, timeout (answered anyway), no_listener (no relay-ingest with a relay), unknown (Redis did not answer)',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  bunkerListenWaitSeconds: new Histogram({
    name: `${P}_bunker_listen_wait_seconds`,
    help: 'How long the api waited for relay-ingest to listen for a new bunker before handing its URL out',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),

  /** Activity entries dropped unwritten, by reason: buffer_full, refused, shutdown (workers/activity-writer.ts). */
  activityDropped: new Counter({
    name: `${P}_activity_dropped_total`,
    help: 'Activity entries dropped unwritten: buffer_full (database unreachable too long), refused (the database rejected the row), shutdown',
    labelNames: ['reason'],
    registers: [registry],
  }),
};

/** What the pool metrics read of a pg.Pool. */
export interface WatchedPool {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number };
  readonly ending?: boolean;
  readonly ended?: boolean;
}

const pools = new Set<WatchedPool>();

/** Counts a database pool in the keyfarm_db_pool_* gauges until it is ended. */
export function watchDbPool(pool: WatchedPool): void {
  pools.add(pool);
}

addScrapeHook(() => {
  let inUse = 0;
  let idle = 0;
  let waiting = 0;
  let max = 0;
  for (const p of pools) {
    if (p.ending || p.ended) {
      pools.delete(p);
      continue;
    }
    inUse += p.totalCount - p.idleCount;
    idle += p.idleCount;
    waiting += p.waitingCount;
    max += p.options.max ?? 10;
  }
  metrics.dbPoolInUse.set(inUse);
  metrics.dbPoolIdle.set(idle);
  metrics.dbPoolWaiting.set(waiting);
  metrics.dbPoolMax.set(max);
});
