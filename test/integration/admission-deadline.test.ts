// Admission by deadline and answers that say what became of a call, against real servers: an api process
// (spawned), PostgreSQL, Redis, and a workers role in this process whose crypto a test slows or holds.
// - An overloaded shard (one user, a closed-loop flood from its own process): what is accepted is answered
//   well within the timeout, the rest get a fast 503 `not_queued` with Retry-After, some before their
//   body is read.
// - The api's Redis link lost while a job is being signed: the answers say `outcome_unknown` (504), never
//   `not_queued`, and the worker did sign those calls; calls made while the link is down are refused
//   `not_queued` and never signed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { prepareRuntime, openKeyManager, type Runtime } from '../../bin/runtime.js';
import { parseConfig } from '../../shared/config.js';
import { KeyStore } from '../../shared/custody/key-store.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { loadPayloadSealer } from '../../shared/farm/payload-key.js';
import { startCryptoBackend } from '../../workers/crypto/backend.js';
import { CryptoPool } from '../../workers/crypto/pool.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from '../../workers/crypto/types.js';
import { startWorkers, type Workers } from '../../workers/index.js';
import { PostgresKeyLoader } from '../../workers/postgres-key-loader.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  freePort,
  migrateDatabase,
  redisUrl,
  type TestDatabase,
} from '../support/env.js';
import { testLogger } from '../support/logs.js';
import { PROJECT_ROOT } from '../support/paths.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import type { FloodAnswer, FloodReport } from '../support/rpc-flood.js';
import { recordStoredKeys } from '../support/stored-keys.js';
import { startRedisProxy, type CuttableProxy } from '../support/tcp-proxy.js';
import path from 'node:path';

/** The real crypto, made slower per item, or held at a gate; records the content of every event it signed. */
class ControlledCrypto implements CryptoRunner {
  readonly signed = new Set<string>();
  perItemMs = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  /** Runs that reached the gate. */
  held = 0;

  constructor(private readonly inner: CryptoRunner) {}

  hold(): void {
    this.held = 0;
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.gate = undefined;
    this.openGate?.();
  }

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (this.gate) {
      this.held++;
      await this.gate;
    }
    if (this.perItemMs) await delay(ops.length * this.perItemMs);
    const results = await this.inner.run(ops);
    ops.forEach((o, i) => {
      if (o.op === 'sign_event' && results[i]?.ok) this.signed.add(o.event.content);
    });
    return results;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Farm {
  base: string;
  token: string;
  crypto: ControlledCrypto;
  api: KeyfarmProcess;
  stop(): Promise<void>;
}

const RPC_TIMEOUT_MS = 6000;
const MAX_WAIT_MS = 2000;

/** An api process (its Redis through `proxy` if given), workers here on one shard, one user's token. */
async function startFarm(name: string, env: Record<string, string>, proxy?: CuttableProxy): Promise<Farm> {
  const db: TestDatabase = await createTestDatabase();
  await migrateDatabase(db.url);
  const apiPort = await freePort();
  const base = `http://127.0.0.1:${apiPort}`;
  const farmEnv = baseTestEnv({
    DATABASE_URL: db.url,
    SHARD_COUNT: '1',
    RPC_TIMEOUT_MS: String(RPC_TIMEOUT_MS),
    ADMISSION_MAX_WAIT_MS: String(MAX_WAIT_MS),
    JOB_CONCURRENCY: '1',
    LEASE_TTL_MS: '1000',
    // Behind a proxy the farm stays on the single Redis, in cluster mode too (the proxy fronts one server).
    ...(proxy ? { REDIS_URL: redisUrl() } : {}),
    ...env,
  });
  const api = await spawnKeyfarm(
    'api',
    { ...farmEnv, PORT: String(apiPort), ...(proxy ? { REDIS_URL: proxy.urlFor(farmEnv.REDIS_URL!) } : {}) },
    { ready: { url: `${base}/healthz/ready` }, name: `api-${name}` },
  );
  const config = parseConfig(farmEnv);
  const rt: Runtime = await prepareRuntime('workers', config, testLogger(name, 'info'));
  startCryptoBackend(config.CRYPTO_BACKEND, rt.logger);
  const keyManager: KeyManager = await openKeyManager(rt);
  const crypto = new ControlledCrypto(new CryptoPool({ threads: 1 }));
  const workers: Workers = await startWorkers({
    config,
    logger: rt.logger,
    redisUrl: rt.redisUrl,
    keyLoader: new PostgresKeyLoader(rt.db, new KeyStore(keyManager)),
    crypto,
    activity: { record: () => undefined },
    sealer: await loadPayloadSealer(rt.db, keyManager),
  });
  const owned = Date.now() + 10_000;
  while (!workers.ownedShards().includes(0)) {
    if (Date.now() > owned) throw new Error('the workers never took shard 0');
    await delay(25);
  }
  const user = await registerUser(base);
  const { access_token: token } = await authorizeApp(base, user.session, 'full');
  return {
    base,
    token,
    crypto,
    api,
    async stop() {
      await api.stop();
      crypto.release();
      await workers.stop(1000);
      await crypto.close();
      await recordStoredKeys(rt.db, keyManager).catch(() => undefined);
      await keyManager.close();
      await rt.db.end();
      await db.drop().catch(() => undefined);
    },
  };
}

/** Runs test/support/rpc-flood.ts in its own process against the farm. */
function flood(farm: Farm, connections: number, seconds: number): Promise<FloodReport> {
  const script = path.join(PROJECT_ROOT, 'dist', 'test', 'support', 'rpc-flood.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      env: {
        ...process.env,
        FLOOD_URL: farm.base,
        FLOOD_TOKEN: farm.token,
        FLOOD_CONNECTIONS: String(connections),
        FLOOD_SECONDS: String(seconds),
        FLOOD_HONOUR_RETRY_AFTER: '1',
      },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as FloodReport) : reject(new Error(`flood exited ${code}: ${err}`)),
    );
  });
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The value of one series of the api's metrics (0 when absent). */
async function metric(base: string, series: string): Promise<number> {
  const text = (await call(base, 'GET', '/api/metrics')).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
}

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });
const sign = (content: string) => rpc(farm.base, farm.token, 'sign_event', [note(content)]);

// One farm for both tests (the api reaches Redis through a proxy the outage test cuts).
let farm: Farm;
let proxy: CuttableProxy;
before(async () => {
  proxy = await startRedisProxy(baseTestEnv().REDIS_URL!);
  farm = await startFarm('admission', { LOG_LEVEL: 'warn' }, proxy);
});
after(async () => {
  await farm?.stop();
  await proxy?.stop();
  await stopAllKeyfarms();
});

describe('an overloaded shard', () => {
  it('answers what it accepts well within the timeout and refuses the rest at once, 503 not_queued', async (t) => {
    // One job at a time, 20 ms an item: about 50 items a second, so 200 callers would wait about 4 s
    // (and do, without admission by deadline: p50 4.6 s, max 5.4 s on the shared 2-core test machine).
    farm.crypto.perItemMs = 20;
    const report = await flood(farm, 200, 6);
    const ok = report.answers.filter((a) => a.status === 200);
    const refused = report.answers.filter((a) => a.status === 503);
    const other = report.answers.filter((a) => a.status !== 200 && a.status !== 503);
    const ms = (list: FloodAnswer[], q: number) =>
      quantile(
        list.map((a) => a.ms),
        q,
      ).toFixed(0);
    t.diagnostic(
      `accepted ${ok.length}: p50 ${ms(ok, 0.5)} p99 ${ms(ok, 0.99)} max ${ms(ok, 1)} ms; ` +
        `refused ${refused.length}: p50 ${ms(refused, 0.5)} p99 ${ms(refused, 0.99)} ms; other ${other.length}, errors ${report.errors}`,
    );
    assert.equal(report.errors, 0, 'no connection failed');
    assert.deepEqual(
      other.map((a) => `${a.status} ${a.reason}`),
      [],
      'every answer is a signature or a refusal',
    );
    assert.ok(ok.length >= 100, `the shard kept signing (${ok.length})`);
    assert.ok(refused.length >= 100, `the overload was refused (${refused.length})`);
    for (const a of refused) {
      assert.equal(a.reason, 'not_queued');
      assert.equal(a.retryable, true);
      assert.ok(Number(a.retryAfter) >= 1, `Retry-After ${a.retryAfter}`);
    }
    // Accepted: within the admission wait, plus a batch's gathering (up to 250 ms) and a loaded machine.
    const okMs = ok.map((a) => a.ms);
    assert.ok(quantile(okMs, 0.5) < MAX_WAIT_MS + 1000, `accepted p50 ${quantile(okMs, 0.5).toFixed(0)} ms`);
    assert.ok(Math.max(...okMs) < MAX_WAIT_MS + 2000, `slowest accepted ${Math.max(...okMs).toFixed(0)} ms`);
    // Refused: at once, or after a batch's gathering (the first burst also meets a cold api).
    const refusedMs = refused.map((a) => a.ms);
    assert.ok(quantile(refusedMs, 0.5) < 500, `refusals p50 ${quantile(refusedMs, 0.5).toFixed(0)} ms`);
    assert.ok(quantile(refusedMs, 0.99) < 1500, `refusals p99 ${quantile(refusedMs, 0.99).toFixed(0)} ms`);
    // Some refusals came before the api read the body (the token's lookup in memory, the shard held).
    const unread = await metric(farm.base, 'keyfarm_http_rpc_requests_total{method="unread",status="503"}');
    assert.ok(unread > 0, 'refused before the body was read');
  });
});

describe("the api's Redis link lost mid-request", () => {
  it('answers outcome_unknown for calls that were queued (and signed), not_queued only for calls never queued', async () => {
    const { crypto } = farm;
    crypto.perItemMs = 0;
    // The overload test's refusals are over: the shard takes calls again.
    await waitUntil('the shard to take calls', async () => (await sign(`warm ${Date.now()}`)).status === 200);
    crypto.hold();
    const queued = Array.from({ length: 5 }, (_, i) => `queued ${i} ${Date.now()}`);
    const answers = queued.map((c) => sign(c));
    // The job is on the worker, in the crypto: cut the api off Redis.
    const start = Date.now();
    while (crypto.held === 0) {
      if (Date.now() - start > 5000) throw new Error('the job never reached the crypto');
      await delay(10);
    }
    proxy.cut();
    const results = await Promise.all(answers);
    // The calls of the job out are answered at once, of unknown outcome. A call still gathering for the
    // next job (calls of one turn share a job; one arriving later waits for it) was never queued.
    const unknown = queued.filter((_, i) => results[i]!.status === 504);
    const notQueued = queued.filter((_, i) => results[i]!.status === 503);
    for (const r of results) {
      if (r.status === 504) {
        assert.equal(r.body.reason, 'outcome_unknown', JSON.stringify(r.body));
        assert.equal(r.body.retryable, false);
        assert.equal(r.headers.get('retry-after'), null, 'no invitation to retry');
      } else {
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.equal(r.body.reason, 'not_queued');
      }
    }
    assert.ok(unknown.length >= 1, 'the job in the crypto was answered outcome_unknown');
    // While the link is down: refused before any queue.
    const never = `never ${Date.now()}`;
    const down = await sign(never);
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body.reason, 'not_queued');
    assert.equal(down.body.retryable, true);
    assert.ok(Number(down.headers.get('retry-after')) >= 1);

    // The worker goes on and signs the job it holds: "unknown" was the truth, "safe to retry" would not be.
    crypto.release();
    const signed = Date.now() + 5000;
    while (!unknown.every((c) => crypto.signed.has(c))) {
      if (Date.now() > signed) assert.fail(`signed: ${[...crypto.signed].join(', ')}`);
      await delay(20);
    }
    await delay(500);
    for (const c of [...notQueued, never]) assert.ok(!crypto.signed.has(c), `refused not_queued, yet signed: ${c}`);

    // Link back: calls are signed again.
    proxy.restore();
    await waitUntil('signing again', async () => (await sign(`back ${Date.now()}`)).status === 200);
  });

  it('a frozen Redis holds no call: admission gives up after its deadline and says not_queued', async () => {
    const { crypto } = farm;
    proxy.freeze();
    // Without a deadline the call would wait for the thaw: it comes after 4 s whatever happens.
    const thawLater = setTimeout(() => proxy.thaw(), 4000);
    try {
      const frozen = `frozen ${Date.now()}`;
      const started = performance.now();
      const r = await sign(frozen);
      const ms = performance.now() - started;
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.reason, 'not_queued');
      assert.ok(ms < 2500, `answered in ${ms.toFixed(0)} ms, not when Redis thaws`);
      proxy.thaw();
      // The admission lands late, but no job is ever added for it: nothing signs the call.
      await delay(1000);
      assert.ok(!crypto.signed.has(frozen), 'a call refused not_queued was never signed');
    } finally {
      clearTimeout(thawLater);
      proxy.thaw();
    }
  });
});

describe('after the freeze', () => {
  it('signs again by itself', async () => {
    const back = Date.now() + 10_000;
    for (;;) {
      const r = await sign(`back ${Date.now()}`);
      if (r.status === 200) break;
      assert.equal(r.body.reason, 'not_queued', JSON.stringify(r.body));
      if (Date.now() > back) assert.fail('the api never came back');
      await delay(100);
    }
  });
});
