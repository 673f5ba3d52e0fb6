// User-supplied relays (bunker links, nostrconnect://) as an attacker uses them, against an in-process farm
// (api, relay-ingest, workers) on real Redis and PostgreSQL with real relays: relay-slot exhaustion,
// SSRF to loopback, private and metadata addresses (at creation, and at connect for rows already stored
// and names that resolve to loopback), user relays in /.well-known/nostr.json, and a user's relay keeping
// readiness green while the service relays are down.
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools';
import { BunkerSigner, createNostrConnectURI } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation as usePoolWebSocket } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { reserveCreation } from '../../api/services/user-relays.js';
import { startHealthServer } from '../../bin/health-server.js';
import { startRelayIngest, type RelayIngest } from '../../relay-ingest/index.js';
import { announceBunker } from '../../shared/nip46/channels.js';
import { createRedis } from '../../shared/redis.js';
import type { Resolver } from '../../shared/user-relay-policy.js';
import { authorizeApp, call, pkcePair, registerUser, rpc, type TestUser as User } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { FAST_RELAY } from '../support/bunker.js';
import { within } from '../support/wait.js';

usePoolWebSocket(WebSocket);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A plain TCP listener on 127.0.0.1 standing for an internal service: it counts whoever connects. */
async function internalService(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const createBunker = (base: string, user: User, relays?: string[], extra: Record<string, unknown> = {}) =>
  call(
    base,
    'POST',
    '/api/user/bunker/create',
    { app_name: 'relay test', ...(relays ? { relays } : {}), ...extra },
    user.session,
  );

function created(res: { status: number; body: any }): { id: string; pubkey: string } {
  assert.equal(res.status, 201, JSON.stringify(res.body));
  recordSecret(new URL(res.body.bunker_url).searchParams.get('secret')!);
  return { id: res.body.authorization_id, pubkey: res.body.bunker_pubkey };
}

function nostrConnectUri(relays: string[]) {
  const sk = generateSecretKey();
  recordSecret(bytesToHex(sk));
  const secret = recordSecret(`nc-${bytesToHex(generateSecretKey()).slice(0, 24)}`);
  return {
    sk,
    pk: getPublicKey(sk),
    uri: createNostrConnectURI({ clientPubkey: getPublicKey(sk), relays, secret, name: 'Relay Test App' }),
  };
}

describe('user relays on a farm that allows public hosts only', () => {
  let farm: TestFarm;
  let service: TestRelay;
  let base: string;
  let internal: Awaited<ReturnType<typeof internalService>>;

  before(async () => {
    [service, internal] = await Promise.all([startTestRelay(), internalService()]);
    farm = await startTestFarm(
      'user-relays-public',
      {
        BUNKER_RELAYS: service.url,
        // ws:// allowed so the refusals below are the address checks, not the scheme (the unit test covers wss-only).
        USER_RELAYS_ALLOW_WS: 'true',
        USER_RELAYS_ALLOW_PRIVATE: 'false',
        USER_RELAYS_PER_AUTHORIZATION: '2',
        USER_RELAYS_PER_USER: '3',
        USER_RELAYS_TOTAL: '4',
        MAX_AUTHORIZATIONS_PER_USER: '5',
      },
      { api: true, workers: true, relayIngest: { relay: FAST_RELAY } },
    );
    base = farm.url;
  });

  after(async () => {
    await farm?.stop();
    await service?.stop();
    await internal?.close();
  });

  it('refuses at creation relays on loopback, private, link-local and metadata addresses, with userinfo, in every spelling; the internal listener is never reached', async () => {
    const user = await registerUser(base);
    const p = internal.port;
    const attacks = [
      `ws://127.0.0.1:${p}/internal/admin/delete?id=1`,
      `ws://localhost:${p}`,
      `ws://2130706433:${p}`,
      `ws://0x7f.0.0.1:${p}`,
      `ws://0177.0.0.1:${p}`,
      `ws://127.1:${p}`,
      `ws://0.0.0.0:${p}`,
      `ws://[::1]:${p}`,
      `ws://[::ffff:127.0.0.1]:${p}`,
      'ws://0.0.0.0:6379',
      'wss://[::1]:1/',
      'ws://169.254.169.254/latest/meta-data',
      'ws://metadata.google.internal/computeMetadata/v1',
      'ws://10.0.0.1',
      'ws://192.168.1.1',
      'ws://100.64.0.1',
      'ws://[fd00:ec2::254]',
      'ws://[fe80::1]',
      'ws://redis:6379',
      'ws://user:pass@relay.example.com',
    ];
    for (const relay of attacks) {
      const res = await createBunker(base, user, [relay]);
      assert.equal(res.status, 400, `${relay}: ${JSON.stringify(res.body)}`);
      assert.doesNotMatch(JSON.stringify(res.body), /pass@/, 'no userinfo echoed');
      const nc = await call(
        base,
        'POST',
        '/api/user/nostrconnect',
        { uri: nostrConnectUri([relay]).uri },
        user.session,
      );
      assert.equal(nc.status, 400, `nostrconnect ${relay}: ${JSON.stringify(nc.body)}`);
    }
    const sessions = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
    assert.deepEqual(sessions.body, [], 'nothing was created');
    await farm.relayIngest!.settled();
    await sleep(1000);
    assert.equal(internal.connections(), 0, 'relay-ingest never connected to the internal listener');
  });

  it('never connects to a stored user relay on loopback, by address or through a name that resolves there at connect time (DNS rebinding)', async () => {
    const user = await registerUser(base);
    const bunker = created(await createBunker(base, user));
    const p = internal.port;
    // Rows as a legacy version or a rebinding name would leave them: written straight to the table.
    const stored = [
      `ws://127.0.0.1:${p}`,
      `ws://localhost:${p}`,
      `ws://[::ffff:7f00:1]:${p}`,
      `ws://rebind.example.com:${p}`,
    ];
    await farm.rt.db.query('UPDATE authorizations SET relays = $2 WHERE id = $1', [bunker.id, stored]);
    // A second relay-ingest whose DNS says rebind.example.com is 127.0.0.1 (as an attacker's DNS server would at connect time).
    const asked: string[] = [];
    const resolver: Resolver = (hostname, _options, callback) => {
      asked.push(hostname);
      if (hostname === 'rebind.example.com')
        return callback(null, [{ address: '127.0.0.1', family: 4 } satisfies LookupAddress]);
      callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    };
    const second: RelayIngest = await startRelayIngest({
      config: farm.config,
      logger: farm.rt.logger,
      db: farm.rt.db,
      redisUrl: farm.rt.redisUrl,
      tuning: { relay: FAST_RELAY },
      userRelayResolver: resolver,
    });
    const redis = createRedis(farm.rt.redisUrl);
    try {
      await announceBunker(redis, farm.config.KEY_PREFIX, { type: 'bunker_added', bunkerPubkey: bunker.pubkey });
      await waitFor('the name looked up at connect', () => asked.includes('rebind.example.com'));
      await waitFor(
        'the name looked up again (a reconnect)',
        () => asked.filter((h) => h === 'rebind.example.com').length >= 2,
        5000,
      );
      await Promise.all([second.settled(), farm.relayIngest!.settled()]);
      await sleep(500);
      assert.equal(internal.connections(), 0, 'no connection reached 127.0.0.1');
      for (const ingest of [second, farm.relayIngest!]) {
        assert.ok(
          !ingest.pool.has(`ws://127.0.0.1:${p}`) && !ingest.pool.has(`ws://localhost:${p}`),
          'literal loopback relays are not in the plan',
        );
        assert.ok(ingest.pool.has(service.url), 'the service relay (itself on loopback) is trusted');
      }
      // The bunker still works on the service relay.
      assert.ok(service.stats.reqs.some(([, fs]) => fs.some((f) => f['#p']?.includes(bunker.pubkey))));
    } finally {
      await second.stop();
      await redis.quit();
      // Its stored relays would count against the farm's cap in the next test.
      await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: bunker.id }, user.session);
    }
  });

  it('caps user relays per authorization, per user and farm-wide (503, never silent); a revoked authorization frees its relays at once; two racing for the last slot do not both get it', async () => {
    const [u1, u2, u3] = await Promise.all([registerUser(base), registerUser(base), registerUser(base)]);
    const r = (n: number | string) => `wss://r${n}.example.com`;
    // Per authorization: at most 2 besides the service relay, which is free.
    assert.equal((await createBunker(base, u1, [r(1), r(2), r(3)])).status, 400);
    const slotAttack = await createBunker(
      base,
      u1,
      Array.from({ length: 20 }, (_, i) => `wss://slot-${i}.example.com`),
    );
    assert.equal(slotAttack.status, 400);
    assert.match(slotAttack.body.error, /at most 2 relays/);
    created(await createBunker(base, u1, [r(1), r(2), service.url]));
    const third = created(await createBunker(base, u1, [r(3)]));
    // Per user: 3 distinct.
    const overUser = await createBunker(base, u1, [r(4)]);
    assert.equal(overUser.status, 409, JSON.stringify(overUser.body));
    created(await createBunker(base, u1, [r(1), service.url])); // relays already theirs take no new slot
    // Farm-wide: 4 distinct.
    created(await createBunker(base, u2, [r(4)]));
    const full = await createBunker(base, u3, [r(5)]);
    assert.equal(full.status, 503, JSON.stringify(full.body));
    assert.match(full.body.error, /cannot listen on more relays/);
    assert.ok(full.headers.get('retry-after'));
    const fullNc = await call(base, 'POST', '/api/user/nostrconnect', { uri: nostrConnectUri([r(5)]).uri }, u3.session);
    assert.equal(
      fullNc.status,
      503,
      'a nostrconnect the pool could not serve is refused, not answered 201 and never connected',
    );
    created(await createBunker(base, u3, [r(1)])); // a relay already listened on takes no slot
    await waitFor('relay-ingest on the four user relays', () =>
      [1, 2, 3, 4].every((n) => farm.relayIngest!.pool.has(r(n))),
    );
    assert.ok(!farm.relayIngest!.pool.has(r(5)));

    // Revoking frees the relay in PostgreSQL (the next creation gets it) and in relay-ingest at once.
    assert.equal(
      (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: third.id }, u1.session)).status,
      200,
    );
    await waitFor(
      "relay-ingest dropping the revoked authorization's relay",
      () => !farm.relayIngest!.pool.has(r(3)),
      3000,
    );
    const fifth = created(await createBunker(base, u3, [r(5)]));
    await waitFor('relay-ingest on the new relay', () => farm.relayIngest!.pool.has(r(5)));

    // One slot free again; several users race for it in parallel, each with a new relay.
    assert.equal(
      (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: fifth.id }, u3.session)).status,
      200,
    );
    const racers = await Promise.all(Array.from({ length: 6 }, () => registerUser(base)));
    const results = await Promise.all(racers.map((u, i) => createBunker(base, u, [r(`race-${i}`)])));
    const statuses = results.map((res) => res.status).sort();
    assert.deepEqual(statuses, [201, 503, 503, 503, 503, 503], JSON.stringify(results.map((res) => res.body)));
    for (const res of results) if (res.status === 201) created(res);
    const { rows } = await farm.rt.db.query<{ n: number }>(
      `SELECT count(DISTINCT x)::int AS n FROM authorizations, unnest(relays) x WHERE revoked_at IS NULL AND x <> $1`,
      [service.url],
    );
    assert.equal(rows[0]!.n, 4, 'the farm holds exactly its cap of user relays');

    // The same race made certain: replica A has checked the last slot and not yet committed when replica
    // B checks. B must wait for A's commit and then be refused, not count the old state and pass too.
    const winner = results.findIndex((res) => res.status === 201);
    assert.equal(
      (
        await call(
          base,
          'POST',
          '/api/user/sessions/revoke',
          { authorization_id: results[winner]!.body.authorization_id },
          racers[winner]!.session,
        )
      ).status,
      200,
    );
    const [a, b] = [racers[(winner + 1) % 6]!, racers[(winner + 2) % 6]!];
    const aBunker = created(await createBunker(base, a));
    const userIdOf = async (u: User) =>
      (await farm.rt.db.query<{ id: string }>('SELECT id FROM users WHERE pubkey = $1', [u.pubkey])).rows[0]!.id;
    const [aId, bId] = [await userIdOf(a), await userIdOf(b)];
    const [txA, txB] = [await farm.rt.db.connect(), await farm.rt.db.connect()];
    try {
      await txA.query('BEGIN');
      await reserveCreation(txA, farm.config, aId, [r('replica-a')]);
      await txB.query('BEGIN');
      let bOutcome: string | undefined;
      const bDone = reserveCreation(txB, farm.config, bId, [r('replica-b')]).then(
        () => (bOutcome = 'passed'),
        (err: { statusCode?: number }) => (bOutcome = `refused ${err.statusCode}`),
      );
      await sleep(300);
      assert.equal(bOutcome, undefined, 'replica B waits while replica A holds the last slot');
      await txA.query('UPDATE authorizations SET relays = $2 WHERE id = $1', [aBunker.id, [r('replica-a')]]);
      await txA.query('COMMIT');
      await bDone;
      assert.equal(bOutcome, 'refused 503');
    } finally {
      await txB.query('ROLLBACK').catch(() => undefined);
      txA.release();
      txB.release();
    }
  });

  it('caps live authorizations per user, also when created in parallel', async () => {
    const user = await registerUser(base);
    const results = await Promise.all(Array.from({ length: 8 }, () => createBunker(base, user)));
    assert.deepEqual(results.map((res) => res.status).sort(), [201, 201, 201, 201, 201, 409, 409, 409]);
    const ids = results.filter((res) => res.status === 201).map((res) => created(res).id);
    const refused = results.find((res) => res.status === 409)!;
    assert.match(refused.body.error, /at most 5 live authorizations/);
    // OAuth-created authorizations count too.
    const { verifier, challenge } = pkcePair();
    const oauth = await call(
      base,
      'POST',
      '/api/oauth/authorize',
      {
        client_id: 'cap-app',
        redirect_uri: 'http://127.0.0.1:9/cb',
        scope: 'policy:full',
        approved: true,
        state: 's',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      },
      user.session,
    );
    assert.equal(oauth.status, 200, JSON.stringify(oauth.body));
    recordSecret(oauth.body.code);
    const token = await call(base, 'POST', '/api/oauth/token', {
      grant_type: 'authorization_code',
      code: oauth.body.code,
      client_id: 'cap-app',
      redirect_uri: 'http://127.0.0.1:9/cb',
      code_verifier: verifier,
    });
    assert.equal(token.status, 409, JSON.stringify(token.body));
    const live = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
    assert.equal(live.body.filter((a: { revoked_at: string | null }) => a.revoked_at === null).length, 5);
    assert.equal(
      (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: ids[0] }, user.session)).status,
      200,
    );
    created(await createBunker(base, user));
  });

  it("publishes only the service relays in /.well-known/nostr.json, never a user's own", async () => {
    const user = await registerUser(base);
    // Public hosts that take no new farm slot: relays another user already holds.
    created(await createBunker(base, user, ['wss://r1.example.com', 'wss://r2.example.com']));
    const res = await call(base, 'GET', `/.well-known/nostr.json?name=${user.pubkey}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.names[user.pubkey], user.pubkey);
    assert.deepEqual(res.body.nip46.relays, [service.url]);
    assert.deepEqual(res.body.nip46[user.pubkey], [service.url]);
    assert.doesNotMatch(JSON.stringify(res.body), /example\.com/);
  });
});

describe('user relays on local relays (development settings), relay slots and readiness', () => {
  let farm: TestFarm;
  let service: TestRelay;
  let own: TestRelay[];
  let base: string;
  const pools: SimplePool[] = [];
  const signers: BunkerSigner[] = [];

  before(async () => {
    service = await startTestRelay();
    own = await Promise.all([startTestRelay(), startTestRelay(), startTestRelay()]);
    farm = await startTestFarm(
      'user-relays-local',
      {
        BUNKER_RELAYS: service.url,
        USER_RELAYS_ALLOW_WS: 'true',
        USER_RELAYS_ALLOW_PRIVATE: 'true',
        USER_RELAYS_PER_AUTHORIZATION: '2',
        USER_RELAYS_PER_USER: '3',
        USER_RELAYS_TOTAL: '4',
        RPC_TIMEOUT_MS: '3000',
      },
      { api: true, workers: true, relayIngest: { relay: FAST_RELAY, publishRetryDelayMs: 100 } },
    );
    base = farm.url;
  });

  after(async () => {
    for (const s of signers) await s.close().catch(() => undefined);
    for (const p of pools) p.destroy();
    await farm?.stop();
    await service?.stop();
    for (const r of own ?? []) await r.stop();
  });

  const subscribedOn = (relay: TestRelay, pubkey: string) =>
    relay.stats.reqs.some(([, fs]) => fs.some((f) => f['#p']?.includes(pubkey)));

  it("drops a revoked authorization's relays at once, and an expired one's at its expiry (not at the next reload)", async () => {
    const user = await registerUser(base);
    const ingest = farm.relayIngest!;
    const revoked = created(await createBunker(base, user, [own[0]!.url]));
    await waitFor('listening on the user relay', () => subscribedOn(own[0]!, revoked.pubkey));
    assert.equal(
      (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: revoked.id }, user.session)).status,
      200,
    );
    await waitFor("the revoked authorization's relay dropped", () => !ingest.pool.has(own[0]!.url), 3000);
    assert.ok(ingest.directory.get(revoked.pubkey), 'the revoked bunker is still answered (on the service relay)');

    const expiring = created(
      await createBunker(base, user, [own[1]!.url], { expires_at: Math.floor(Date.now() / 1000) + 2 }),
    );
    await waitFor("listening on the expiring authorization's relay", () => subscribedOn(own[1]!, expiring.pubkey));
    // The reload runs every 60 s; the relay must go within moments of the expiry.
    await waitFor("the expired authorization's relay dropped", () => !ingest.pool.has(own[1]!.url), 5000);
  });

  it("slot exhaustion: an attacker's bunkers are refused past the caps; a later user's nostrconnect on a relay of their own is answered, and past the farm cap refused with 503", async () => {
    const attacker = await registerUser(base);
    for (let i = 0; i < 4; i++) {
      const relays = Array.from({ length: 20 }, (_, j) => `ws://127.0.0.1:9/slot-${i}-${j}`);
      assert.equal((await createBunker(base, attacker, relays)).status, 400);
    }
    created(await createBunker(base, attacker, ['ws://127.0.0.1:9/slot-a', 'ws://127.0.0.1:9/slot-b']));
    created(await createBunker(base, attacker, ['ws://127.0.0.1:9/slot-c']));
    assert.equal((await createBunker(base, attacker, ['ws://127.0.0.1:9/slot-d'])).status, 409);

    // The victim's app waits on a relay of its own; the connect reply reaches it and signing works.
    const victim = await registerUser(base);
    const app = nostrConnectUri([own[2]!.url]);
    const pool = new SimplePool();
    pools.push(pool);
    const pending = BunkerSigner.fromURI(app.sk, app.uri, { pool }, 10_000);
    await waitFor('the app listening', () =>
      own[2]!.stats.reqs.some(([, fs]) => fs.some((f) => f['#p']?.includes(app.pk))),
    );
    const res = await call(
      base,
      'POST',
      '/api/user/nostrconnect',
      { uri: app.uri, policy_slug: 'full' },
      victim.session,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const signer = await within(10_000, pending, 'the connect reply');
    signers.push(signer);
    const note = await within(
      5000,
      signer.signEvent({ kind: 1, content: 'still served', tags: [], created_at: 1 }),
      'sign_event',
    );
    assert.ok(verifyEvent(note));
    assert.equal(note.pubkey, victim.pubkey);

    // The farm's four user relays are taken: a second attacker account is refused out loud.
    const second = await registerUser(base);
    const refused = await call(
      base,
      'POST',
      '/api/user/nostrconnect',
      { uri: nostrConnectUri(['ws://127.0.0.1:9/slot-e']).uri },
      second.session,
    );
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
  });

  it("all-in-one: ready while the service relay is down (relays reported degraded), HTTP signing still works; a user's relay counts for nothing", async () => {
    const user = await registerUser(base);
    const { access_token: token } = await authorizeApp(base, user.session, 'full');
    const readyUp = await call(base, 'GET', '/healthz/ready');
    assert.equal(readyUp.status, 200);
    assert.equal(readyUp.body.checks.relays, 'ok');
    await service.stop();
    try {
      await waitFor('the service relay seen down', () => farm.relayIngest!.pool.serviceStatus().connected === 0);
      assert.ok(farm.relayIngest!.pool.connected().includes(own[2]!.url), 'a user relay is connected meanwhile');
      const ready = await call(base, 'GET', '/healthz/ready');
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.equal(ready.body.checks.relays, 'degraded: 0/1 connected');
      const signed = await rpc(base, token, 'sign_event', [
        { kind: 1, content: 'http while relays are down', tags: [], created_at: Math.floor(Date.now() / 1000) },
      ]);
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
    } finally {
      await service.start();
    }
    await waitFor('the service relay back', () => farm.relayIngest!.pool.serviceStatus().connected === 1, 10_000);
  });

  it("relay-ingest alone: not ready without a service relay, though a user's relay is connected", async () => {
    const dead = await startTestRelay();
    const deadUrl = dead.url;
    await dead.stop();
    const ingest = await startRelayIngest({
      config: { ...farm.config, BUNKER_RELAYS: [deadUrl] },
      logger: farm.rt.logger,
      db: farm.rt.db,
      redisUrl: farm.rt.redisUrl,
      tuning: { relay: FAST_RELAY },
    });
    const health = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      version: 'test',
      ready: () => ingest.readiness(),
    });
    try {
      await waitFor('the user relay connected', () => ingest.pool.connected().includes(own[2]!.url));
      const res = await call(health.url, 'GET', '/healthz/ready');
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.checks.relays, 'no relay connected (0/1)');
    } finally {
      await health.close();
      await ingest.stop();
    }
  });
});
