// Observability of a split farm (api, workers, relay-ingest as separate processes over real Redis,
// PostgreSQL and a relay): one trace id from the HTTP request (x-trace-id) into the worker's log lines,
// and from a NIP-46 request through relay-ingest, the job and the worker to the relay publish; the
// metrics each process exports, including per-shard owner, depth and oldest-job age read at scrape time,
// behind METRICS_TOKEN on every port that serves them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, verifyEvent } from 'nostr-tools';
import { BunkerSigner, parseBunkerInput } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { shardOf } from '../../shared/shard.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { baseTestEnv, createTestDatabase, freePort, type TestDatabase, migrateDatabase } from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';

useWebSocketImplementation(WebSocket);

const SHARDS = 4;
const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type LogLine = Record<string, unknown> & { msg?: string; traceId?: string };

/** The JSON log lines of this run of `proc` (its log file may hold an earlier run's). */
function logLines(proc: KeyfarmProcess): LogLine[] {
  return readFileSync(proc.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.pid === proc.pid);
}

/** The value of one sample in Prometheus text (labels given must all match), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** METRICS_TOKEN of every process of this farm: a scrape must bring it. */
const metricsToken = recordSecret(randomBytes(32).toString('hex'));

async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/api/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  assert.equal(res.status, 200);
  return res.text();
}

describe('trace ids and metrics across api, workers and relay-ingest processes', () => {
  let db: TestDatabase;
  let relay: TestRelay;
  let env: Record<string, string>;
  let api: KeyfarmProcess;
  let workers: KeyfarmProcess;
  let ingest: KeyfarmProcess;
  let apiBase: string;
  let workersBase: string;
  let ingestBase: string;
  let user: Awaited<ReturnType<typeof registerUser>>;
  let token: string;
  const pools: SimplePool[] = [];
  const signers: BunkerSigner[] = [];

  before(async () => {
    db = await createTestDatabase();
    relay = await startTestRelay();
    env = baseTestEnv({
      DATABASE_URL: db.url,
      SHARD_COUNT: String(SHARDS),
      LEASE_TTL_MS: '1500',
      RPC_TIMEOUT_MS: '4000',
      BUNKER_RELAYS: relay.url,
      METRICS_TOKEN: metricsToken,
    });
    await migrateDatabase(db.url);
    const [apiPort, metricsPort, ingestPort] = [await freePort(), await freePort(), await freePort()];
    apiBase = `http://127.0.0.1:${apiPort}`;
    workersBase = `http://127.0.0.1:${metricsPort}`;
    ingestBase = `http://127.0.0.1:${ingestPort}`;
    [api, workers, ingest] = await Promise.all([
      spawnKeyfarm('api', { ...env, PORT: String(apiPort) }, { ready: { url: `${apiBase}/health` } }),
      spawnKeyfarm(
        'workers',
        { ...env, METRICS_PORT: String(metricsPort) },
        { ready: { url: `${workersBase}/health` } },
      ),
      spawnKeyfarm('relay-ingest', { ...env, PORT: String(ingestPort) }, { ready: { url: `${ingestBase}/health` } }),
    ]);
    user = await registerUser(apiBase);
    token = (await authorizeApp(apiBase, user.session, 'full')).access_token;
  });

  after(async () => {
    for (const s of signers) await s.close().catch(() => undefined);
    for (const p of pools) p.destroy();
    await stopAllKeyfarms();
    await relay?.stop();
    try {
      // Every key the processes held (server-generated ones included) goes to the secret scan.
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  it('refuses /api/metrics without METRICS_TOKEN on the api, workers and relay-ingest ports; the probes stay open', async () => {
    const bases = { api: apiBase, workers: workersBase, 'relay-ingest': ingestBase };
    const attempts: Record<string, Record<string, string>> = {
      'no header': {},
      'a wrong token': { authorization: `Bearer ${randomBytes(32).toString('hex')}` },
      'the token one character short': { authorization: `Bearer ${metricsToken.slice(0, -1)}` },
      'the token as basic auth': {
        authorization: `Basic ${Buffer.from(`metrics:${metricsToken}`).toString('base64')}`,
      },
      'the token as a query parameter': {},
    };
    for (const [role, base] of Object.entries(bases)) {
      for (const [what, headers] of Object.entries(attempts)) {
        const url = what.includes('query') ? `${base}/api/metrics?token=${metricsToken}` : `${base}/api/metrics`;
        const res = await fetch(url, { headers });
        const body = await res.text();
        assert.equal(res.status, 401, `${role}, ${what}: ${res.status}`);
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer /, `${role}, ${what}`);
        assert.doesNotMatch(body, /keyfarm_|# HELP/, `${role}, ${what}: metrics in a refusal`);
        assert.ok(!body.includes(metricsToken), `${role}: the token in an error body`);
      }
      const allowed = await scrape(base);
      assert.match(allowed, /^# HELP /m, `${role}: the scrape with the token gets the metrics`);
      for (const probe of ['/health', '/healthz/startup'])
        assert.equal((await fetch(`${base}${probe}`)).status, 200, `${role} ${probe}`);
    }
  });

  it('carries x-trace-id from the HTTP request into the api and worker log lines, and echoes it', async () => {
    const traceId = `trace-http-${randomBytes(6).toString('hex')}`;
    const res = await rpc(apiBase, token, 'sign_event', [note('traced')], { 'x-trace-id': traceId });
    assert.equal(res.status, 200);
    assert.ok(verifyEvent(res.body.result));
    assert.equal(res.headers.get('x-trace-id'), traceId);

    const workerLine = await waitFor('the worker log line', () => logLines(workers).find((l) => l.traceId === traceId));
    assert.equal(workerLine.msg, 'rpc item done');
    assert.equal(workerLine.method, 'sign_event');
    const apiLines = () => logLines(api).filter((l) => l.traceId === traceId);
    await waitFor('the api log line', () => apiLines().find((l) => l.msg === 'request'));
    const queued = await waitFor('the queued line', () => apiLines().find((l) => l.msg === 'request queued'));
    assert.equal(queued.door, 'http');
    assert.equal(queued.jobId, workerLine.jobId, 'the job the api queued is the one the worker ran');

    // Without the header one is made, echoed, and carried the same way.
    const plain = await rpc(apiBase, token, 'sign_event', [note('untraced')]);
    const made = plain.headers.get('x-trace-id') ?? '';
    assert.match(made, /^[0-9a-f-]{36}$/);
    await waitFor('the worker line of a made trace id', () => logLines(workers).find((l) => l.traceId === made));
  });

  it('carries one trace id from a NIP-46 request through relay-ingest, the job and the worker to the relay publish', async () => {
    const created = await call(apiBase, 'POST', '/api/user/bunker/create', { app_name: 'trace test' }, user.session);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const bp = (await parseBunkerInput(created.body.bunker_url))!;
    recordSecret(bp.secret!);
    const clientSk = generateSecretKey();
    recordSecret(bytesToHex(clientSk));
    const pool = new SimplePool();
    pools.push(pool);
    const signer = BunkerSigner.fromBunker(clientSk, bp, { pool });
    signers.push(signer);
    await signer.connect();
    const signed = await signer.signEvent(note('over nip46'));
    assert.ok(verifyEvent(signed));

    const done = await waitFor('the worker line of the sign_event request', () =>
      logLines(workers).find((l) => l.msg === 'nip46 request done' && l.method === 'sign_event'),
    );
    const traceId = done.traceId!;
    assert.match(traceId, /^n46-/);
    const ingestLines = () => logLines(ingest).filter((l) => l.traceId === traceId);
    const queued = await waitFor('the queued line', () => ingestLines().find((l) => l.msg === 'request queued'));
    const published = await waitFor('the publish line', () =>
      ingestLines().find((l) => l.msg === 'nip46 response published'),
    );
    assert.equal(queued.jobId, done.jobId, 'the job relay-ingest queued is the one the worker ran');
    assert.equal(published.jobId, done.jobId);
    await waitFor('the published event at the relay', () =>
      relay.published(bp.pubkey).some((e) => e.id === published.eventId),
    );
  });

  it('exports latency per door and method, cache, KeyManager, relays, DB pool, shard and process metrics', async () => {
    const [fromApi, fromWorkers, fromIngest] = await Promise.all([
      scrape(apiBase),
      scrape(workersBase),
      scrape(ingestBase),
    ]);

    assert.ok(sample(fromApi, 'keyfarm_rpc_duration_seconds_count', { door: 'http', method: 'sign_event' })! >= 2);
    assert.ok(
      sample(fromApi, 'keyfarm_rpc_duration_seconds_bucket', { door: 'http', method: 'sign_event', le: '0.0001' }) !==
        undefined,
    );
    assert.ok(sample(fromApi, 'keyfarm_http_rpc_requests_total', { method: 'sign_event', status: '200' })! >= 2);
    assert.ok(sample(fromApi, 'keyfarm_http_requests_total', { route: '/api/auth/register', status: '201' })! >= 1);
    assert.ok(sample(fromApi, 'keyfarm_registrations_total')! >= 1);
    assert.ok(sample(fromIngest, 'keyfarm_rpc_duration_seconds_count', { door: 'nip46', method: 'sign_event' })! >= 1);
    assert.ok(sample(fromIngest, 'keyfarm_rpc_duration_seconds_count', { door: 'nip46', method: 'connect' })! >= 1);
    assert.equal(sample(fromIngest, 'keyfarm_relays_connected'), 1);
    assert.ok(sample(fromIngest, 'keyfarm_nip46_requests_total')! >= 2);

    // Keys were loaded cold: ahead of their first request (key prefetch), or by it (a cache miss).
    const prefetched = sample(fromWorkers, 'keyfarm_key_prefetch_total', { outcome: 'loaded' }) ?? 0;
    assert.ok((sample(fromWorkers, 'keyfarm_cache_misses_total', { cache: 'key' }) ?? 0) + prefetched >= 1);
    assert.ok(sample(fromWorkers, 'keyfarm_cache_hits_total', { cache: 'key' })! >= 1);
    assert.ok(sample(fromWorkers, 'keyfarm_key_manager_calls_total', { op: 'unwrap', outcome: 'ok' })! >= 1);
    assert.ok(sample(fromWorkers, 'keyfarm_key_manager_duration_seconds_count', { op: 'unwrap' })! >= 1);
    assert.equal(sample(fromWorkers, 'keyfarm_shards_owned'), SHARDS);

    for (const text of [fromApi, fromWorkers]) {
      for (let shard = 0; shard < SHARDS; shard++) {
        assert.equal(sample(text, 'keyfarm_shard_has_owner', { shard: String(shard) }), 1, `shard ${shard} owned`);
        assert.equal(sample(text, 'keyfarm_queue_depth', { shard: String(shard) }), 0);
        assert.equal(sample(text, 'keyfarm_queue_oldest_job_age_seconds', { shard: String(shard) }), 0);
      }
    }
    for (const text of [fromApi, fromWorkers, fromIngest]) {
      assert.ok(sample(text, 'keyfarm_db_pool_max')! >= 1);
      assert.ok(
        sample(text, 'keyfarm_db_pool_idle')! + sample(text, 'keyfarm_db_pool_in_use')! >= 1,
        'the pool has connected',
      );
      assert.equal(sample(text, 'keyfarm_db_pool_waiting'), 0);
      assert.ok(sample(text, 'keyfarm_process_cpu_seconds_total')! > 0);
      assert.ok(sample(text, 'keyfarm_process_resident_memory_bytes')! > 0);
    }
    const ready = await fetch(`${workersBase}/healthz/ready`);
    assert.equal(ready.status, 200, await ready.text());
  });

  it('shows shards with no owner and the age of a job nobody takes once the workers stop', async () => {
    assert.equal((await workers.stop()).code, 0);
    const shard = String(shardOf(user.pubkey, SHARDS));
    await waitFor('every shard without an owner', async () => {
      const text = await scrape(apiBase);
      return Array.from({ length: SHARDS }, (_, s) =>
        sample(text, 'keyfarm_shard_has_owner', { shard: String(s) }),
      ).every((v) => v === 0);
    });
    const pending = rpc(apiBase, token, 'sign_event', [note('nobody signs this')]);
    const text = await waitFor('an ageing job', async () => {
      const t = await scrape(apiBase);
      return (sample(t, 'keyfarm_queue_oldest_job_age_seconds', { shard }) ?? 0) >= 1 ? t : undefined;
    });
    assert.equal(sample(text, 'keyfarm_queue_depth', { shard }), 1);
    assert.equal((await pending).status, 504);
  });
});
