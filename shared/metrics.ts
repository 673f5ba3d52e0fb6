// The process's Prometheus registry and every metric Keyfarm exports. Names follow Keycast's
// (`<prefix>_cache_hits_total`, ...) with the prefix `keyfarm`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'keyfarm_' });

const P = 'keyfarm';
/** Sub-millisecond up to the RPC timeout, in seconds. */
const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const metrics = {
  cacheHits: new Counter({ name: `${P}_cache_hits_total`, help: 'Decrypted-key and conversation-key cache hits', labelNames: ['cache'], registers: [registry] }),
  cacheMisses: new Counter({ name: `${P}_cache_misses_total`, help: 'Cache misses (cold loads)', labelNames: ['cache'], registers: [registry] }),
  cacheSize: new Gauge({ name: `${P}_cache_size`, help: 'Entries held in the worker cache', labelNames: ['cache'], registers: [registry] }),
  cacheBytes: new Gauge({ name: `${P}_cache_bytes`, help: 'Bytes held in the worker cache (estimated)', registers: [registry] }),
  nip46Requests: new Counter({ name: `${P}_nip46_requests_total`, help: 'NIP-46 request events received', registers: [registry] }),
  nip46Processed: new Counter({ name: `${P}_nip46_processed_total`, help: 'NIP-46 requests answered', labelNames: ['outcome'], registers: [registry] }),
  nip46QueueDropped: new Counter({ name: `${P}_nip46_queue_dropped_total`, help: 'NIP-46 requests dropped because the shard was full', registers: [registry] }),
  httpRpcRequests: new Counter({ name: `${P}_http_rpc_requests_total`, help: 'HTTP RPC requests', labelNames: ['method', 'status'], registers: [registry] }),
  httpRpcAuthErrors: new Counter({ name: `${P}_http_rpc_auth_errors_total`, help: 'HTTP RPC requests refused for credentials', registers: [registry] }),
  registrations: new Counter({ name: `${P}_registrations_total`, help: 'Accounts registered', registers: [registry] }),
  logins: new Counter({ name: `${P}_logins_total`, help: 'Successful logins', registers: [registry] }),
  loginFailures: new Counter({ name: `${P}_login_failures_total`, help: 'Failed logins', labelNames: ['reason'], registers: [registry] }),
  backpressureRejected: new Counter({ name: `${P}_backpressure_rejected_total`, help: 'Requests refused with 503 because their shard was full', labelNames: ['door'], registers: [registry] }),
  rpcDuration: new Histogram({ name: `${P}_rpc_duration_seconds`, help: 'Time from accepting a request to its answer', labelNames: ['door', 'method'], buckets: LATENCY_BUCKETS, registers: [registry] }),
  jobDuration: new Histogram({ name: `${P}_job_duration_seconds`, help: 'Worker time per job (a micro-batch)', buckets: LATENCY_BUCKETS, registers: [registry] }),
  jobItems: new Histogram({ name: `${P}_job_items`, help: 'Requests per job', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
  coldKeyLoad: new Histogram({ name: `${P}_cold_key_load_seconds`, help: 'Loading and decrypting a key that was not cached', buckets: LATENCY_BUCKETS, registers: [registry] }),
  queueDepth: new Gauge({ name: `${P}_queue_depth`, help: 'Items waiting or running per shard', labelNames: ['shard'], registers: [registry] }),
  rpcTimeouts: new Counter({ name: `${P}_rpc_timeouts_total`, help: 'Requests answered 504', registers: [registry] }),
  keyManagerCalls: new Counter({ name: `${P}_key_manager_calls_total`, help: 'KeyManager wrap/unwrap calls', labelNames: ['op', 'outcome'], registers: [registry] }),
  keyManagerDuration: new Histogram({ name: `${P}_key_manager_duration_seconds`, help: 'KeyManager call latency', labelNames: ['op'], buckets: LATENCY_BUCKETS, registers: [registry] }),
  shardsOwned: new Gauge({ name: `${P}_shards_owned`, help: 'Shards this worker process owns', registers: [registry] }),
};
