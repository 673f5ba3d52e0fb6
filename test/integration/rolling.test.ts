// A rolling restart under steady load: two api and two workers processes on real Redis and PostgreSQL,
// clients signing in a loop through an emulated load balancer, and each process in turn stopped with
// SIGTERM (it must exit 0) and started again. Not one request may fail.
//
// The load balancer does what a real one does, no more: it sends only to an api whose /healthz/ready
// answers 200 (polled every 100 ms), and a request whose connection is refused or reset before any byte
// of an answer came back is sent to the other api. Any answer that is not a 200 with a valid signature,
// or a connection lost after the answer began, is a failure.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import { authorizeApp, registerUser } from '../support/client.js';
import { baseTestEnv, createTestDatabase, freePort, type TestDatabase, migrateDatabase } from '../support/env.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';
import { waitFor } from './farm-fixtures.js';

const CLIENTS = 6;
const USERS = 8;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Outcome = { status: number; body: string } | { error: Error; answered: boolean };

/** One POST on a keep-alive agent; tells a connection lost before any answer from one lost during it. */
function post(base: string, agent: http.Agent, token: string, payload: string): Promise<Outcome> {
  return new Promise((resolve) => {
    let answered = false;
    const req = http.request(`${base}/api/nostr`, {
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        authorization: `Bearer ${token}`,
      },
    });
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (error) => resolve({ error, answered }));
    });
    req.on('error', (error) => resolve({ error, answered }));
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.end(payload);
  });
}

/** The load balancer's view: which api answers /healthz/ready with 200, polled every 100 ms. */
class Balancer {
  private readonly ready = new Map<string, boolean>();
  private timer: NodeJS.Timeout | undefined;
  private next = 0;

  constructor(private readonly backends: string[]) {}

  start(): void {
    const poll = async () => {
      await Promise.all(
        this.backends.map(async (b) => {
          try {
            const res = await fetch(`${b}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
            await res.arrayBuffer();
            this.ready.set(b, res.status === 200);
          } catch {
            this.ready.set(b, false);
          }
        }),
      );
      if (this.timer !== undefined) this.timer = setTimeout(() => void poll(), 100);
    };
    this.timer = setTimeout(() => void poll(), 0);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A ready backend, round robin, other than `avoid` when another is ready; waits while none is. */
  async pick(avoid?: string): Promise<string> {
    for (;;) {
      const up = this.backends.filter((b) => this.ready.get(b));
      const choices = up.length > 1 && avoid ? up.filter((b) => b !== avoid) : up;
      if (choices.length > 0) return choices[this.next++ % choices.length]!;
      await sleep(20);
    }
  }
}

describe('rolling restart under steady load', () => {
  let db: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    db = await createTestDatabase();
    await migrateDatabase(db.url);
    env = baseTestEnv({
      DATABASE_URL: db.url,
      SHARD_COUNT: '8',
      LEASE_TTL_MS: '1500',
      JOB_LOCK_MS: '3000',
      RPC_TIMEOUT_MS: '20000',
      CRYPTO_THREADS: '1',
      // Long enough for the balancer (100 ms polls) to see "not ready" before the port closes.
      SHUTDOWN_DELAY_MS: '500',
      LOG_LEVEL: 'info',
    });
  });
  after(async () => {
    await stopAllKeyfarms();
    try {
      // Every key the processes held (server-generated ones included) goes to the secret scan.
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  it('restarting api-1, api-2, workers-1 and workers-2 one at a time fails no request', async (t) => {
    const ports = [await freePort(), await freePort()];
    const bases = ports.map((p) => `http://127.0.0.1:${p}`);
    const startApi = (i: number) =>
      spawnKeyfarm(
        'api',
        { ...env, PORT: String(ports[i]) },
        { name: `rolling-api-${i + 1}`, ready: { url: `${bases[i]}/healthz/ready` } },
      );
    const startWorkers = (i: number) =>
      spawnKeyfarm('workers', env, { name: `rolling-workers-${i + 1}`, ready: { log: /keyfarm started/ } });
    const procs: Record<string, KeyfarmProcess> = {};
    [procs['api-1'], procs['api-2'], procs['workers-1'], procs['workers-2']] = await Promise.all([
      startApi(0),
      startApi(1),
      startWorkers(0),
      startWorkers(1),
    ]);

    const accounts = await Promise.all(
      Array.from({ length: USERS }, async (_, i) => {
        const u = await registerUser(bases[i % 2]!);
        return { pubkey: u.pubkey, token: (await authorizeApp(bases[i % 2]!, u.session, 'full')).access_token };
      }),
    );

    const balancer = new Balancer(bases);
    balancer.start();
    let ok = 0;
    let rerouted = 0;
    const failures: string[] = [];
    let running = true;
    const client = async (c: number) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; running; i++) {
        const user = accounts[(c + i) % accounts.length]!;
        const payload = JSON.stringify({
          method: 'sign_event',
          params: [{ kind: 1, content: `rolling ${c}.${i}`, tags: [], created_at: Math.floor(Date.now() / 1000) }],
        });
        let avoid: string | undefined;
        for (let attempt = 0; ; attempt++) {
          const base = await balancer.pick(avoid);
          const out = await post(base, agent, user.token, payload);
          if ('status' in out) {
            let signed = false;
            try {
              const result = JSON.parse(out.body).result;
              signed = out.status === 200 && result.pubkey === user.pubkey && verifyEvent(result);
            } catch {
              signed = false;
            }
            if (signed) ok++;
            else failures.push(`${base}: ${out.status} ${out.body.slice(0, 200)}`);
            break;
          }
          if (out.answered || attempt >= 5) {
            failures.push(
              `${base}: ${out.error.message}${out.answered ? ' (after the answer began)' : ' (6 attempts)'}`,
            );
            break;
          }
          rerouted++;
          avoid = base;
        }
      }
      agent.destroy();
    };
    const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));

    const progress = async (what: string, n: number) => {
      const from = ok;
      await waitFor(`${n} requests answered ${what}`, () => ok >= from + n || failures.length > 0, 60_000);
    };
    try {
      await progress('before the first restart', 50);
      for (const name of ['api-1', 'api-2', 'workers-1', 'workers-2']) {
        const okBefore = ok;
        const old = procs[name]!;
        const exit = await old.stop(60_000);
        assert.deepEqual(exit, { code: 0, signal: null }, `${name} exits 0 on SIGTERM`);
        const duringStop = ok - okBefore;
        const i = Number(name.at(-1)) - 1;
        procs[name] = await (name.startsWith('api') ? startApi(i) : startWorkers(i));
        t.diagnostic(`${name}: ${duringStop} answered while it stopped, ${ok - okBefore} until it was back`);
        assert.ok(ok > okBefore, `load went on while ${name} restarted`);
        await progress(`after ${name} came back`, 30);
      }
    } finally {
      running = false;
      await Promise.all(clients);
      balancer.stop();
    }
    t.diagnostic(`${ok} signed, ${rerouted} sent again after a refused or reset connection, ${failures.length} failed`);
    assert.deepEqual(failures, [], 'no request failed');
    assert.ok(ok >= 200, `${ok} requests signed`);
    await Promise.all(Object.values(procs).map((p) => p.stop()));
  });
});
