// NIP-46 requests an attacker can send without any secret: ones dated outside the accepted window,
// replays of a request already answered (after relay-ingest restarts), and floods from client keys that
// are not a bunker's bound client. Real relay (@nostr-relay/core on ws), real farm on Redis and PostgreSQL;
// relay-ingest is started here so it can be restarted and tuned to a short window.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { finalizeEvent, generateSecretKey, getPublicKey, nip44, type Event } from 'nostr-tools';
import { parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import WebSocket from 'ws';
import { startRelayIngest, type RelayIngest } from '../../relay-ingest/index.js';
import { ingestMetrics } from '../../relay-ingest/metrics.js';
import { UnboundClientLimit } from '../../relay-ingest/unbound-client-limit.js';
import { requestClaimKey } from '../../shared/nip46/channels.js';
import { createRedis, isCluster, type RedisTarget, untilReady } from '../../shared/redis.js';
import { call, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret, testLogFile, testLogger } from '../support/logs.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { FAST_RELAY } from '../support/bunker.js';
import { waitFor } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

/**
 * A short window, so requests just inside and just outside it can be sent (relays take ±10 minutes). The
 * age bound is over half the claim's 300 s margin, so a claim TTL that subtracted a bound instead of
 * adding it would fall short of the window (the restart test reads the TTL).
 */
const MAX_AGE = 200;
/** The subscriptions' `since` reaches back past the age bound, so old requests reach the age check. */
const RELAY_TUNING = { ...FAST_RELAY, sinceWindowSeconds: MAX_AGE + 60 };
const MAX_FUTURE = 30;
const PER_CLIENT = 10;
const PER_BUNKER = 30;
/**
 * When a negative check runs, every request has already been accounted for (answered, or counted as
 * dropped before any queue). The pause only gives an answer that must not exist a chance to show: a
 * queued request is answered within tens of milliseconds on this farm (one job round trip), so half a
 * second is ten times the longest of them.
 */
const LATE_ANSWER_MS = 500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Math.floor(Date.now() / 1000);

/** The JSON lines a test logger has written so far. */
function readLog(name: string): Record<string, unknown>[] {
  const file = testLogFile(name);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function dropped(reason: string): Promise<number> {
  const m = await ingestMetrics.eventsDropped.get();
  return m.values.filter((v) => v.labels.reason === reason).reduce((s, v) => s + v.value, 0);
}

/** A hand-made NIP-46 client on one relay: signs requests with any created_at, keeps every response. */
class RawClient {
  readonly sk = generateSecretKey();
  readonly pk = getPublicKey(this.sk);
  private readonly responses = new Map<string, { result: string; error?: string }[]>();
  private relay: Relay | undefined;
  private seq = 0;

  constructor(readonly bunkerPubkey: string) {
    recordSecret(bytesToHex(this.sk));
  }

  async listen(url: string): Promise<void> {
    this.relay = await Relay.connect(url);
    const conv = nip44.getConversationKey(this.sk, this.bunkerPubkey);
    await new Promise<void>((resolve) => {
      this.relay!.subscribe([{ kinds: [24133], authors: [this.bunkerPubkey], '#p': [this.pk] }], {
        onevent: (e) => {
          const r = JSON.parse(nip44.decrypt(e.content, conv)) as { id: string; result: string; error?: string };
          const list = this.responses.get(r.id) ?? [];
          list.push(r);
          this.responses.set(r.id, list);
        },
        oneose: () => resolve(),
      });
    });
  }

  /** A signed request; its NIP-46 id is returned with it. */
  request(method: string, params: string[] = [], createdAt = now()): { event: Event; rid: string } {
    const rid = `${method}-${++this.seq}`;
    const content = nip44.encrypt(
      JSON.stringify({ id: rid, method, params }),
      nip44.getConversationKey(this.sk, this.bunkerPubkey),
    );
    return {
      event: finalizeEvent({ kind: 24133, created_at: createdAt, tags: [['p', this.bunkerPubkey]], content }, this.sk),
      rid,
    };
  }

  async send(method: string, params: string[] = [], createdAt = now()): Promise<string> {
    const { event, rid } = this.request(method, params, createdAt);
    await this.publish(event);
    return rid;
  }

  async publish(event: Event): Promise<void> {
    await this.relay!.publish(event);
  }

  answers(rid: string): { result: string; error?: string }[] {
    return this.responses.get(rid) ?? [];
  }

  get answered(): number {
    return this.responses.size;
  }

  async answer(rid: string, ms = 5000): Promise<{ result: string; error?: string }> {
    await waitFor(() => this.answers(rid).length > 0, ms, `response to ${rid}`);
    return this.answers(rid)[0]!;
  }

  close(): void {
    this.relay?.close();
  }
}

describe('NIP-46 abuse: request window, replays, unbound client keys', () => {
  let relay: TestRelay;
  let farm: TestFarm;
  let ingest: RelayIngest;
  let user: Awaited<ReturnType<typeof registerUser>>;
  const clients: RawClient[] = [];

  const startIngest = (redisUrl = farm.rt.redisUrl, logger = farm.rt.logger) =>
    startRelayIngest({
      config: farm.config,
      logger,
      db: farm.rt.db,
      redisUrl,
      tuning: { relay: RELAY_TUNING, maxRequestAgeSeconds: MAX_AGE, maxRequestFutureSeconds: MAX_FUTURE },
    });

  before(async () => {
    relay = await startTestRelay();
    farm = await startTestFarm(
      'nip46-abuse',
      {
        BUNKER_RELAYS: relay.url,
        RPC_TIMEOUT_MS: '3000',
        NIP46_UNBOUND_CLIENT_PER_MINUTE: String(PER_CLIENT),
        NIP46_UNBOUND_BUNKER_PER_MINUTE: String(PER_BUNKER),
      },
      { api: true, workers: true },
    );
    ingest = await startIngest();
    user = await registerUser(farm.url);
  });

  after(async () => {
    for (const c of clients) c.close();
    await ingest?.stop();
    await farm?.stop();
    await relay?.stop();
  });

  /** Active subscriptions (not REQs merely received): an event injected after this rises reaches them. */
  const subscriptionsTo = (bunker: string) =>
    relay.stats.subscribed.filter(([, fs]) => fs.some((f) => f['#p']?.includes(bunker))).length;

  async function newBunker(): Promise<BunkerPointer> {
    const res = await call(farm.url, 'POST', '/api/user/bunker/create', { app_name: 'abuse test' }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const bp = (await parseBunkerInput(res.body.bunker_url))!;
    recordSecret(bp.secret!);
    await waitFor(() => subscriptionsTo(bp.pubkey) > 0, 5000, 'subscription to the new bunker');
    return bp;
  }

  async function client(bunker: string): Promise<RawClient> {
    const c = new RawClient(bunker);
    clients.push(c);
    await c.listen(relay.url);
    return c;
  }

  /** A new bunker and its bound client (connected with the secret, and known as bound to relay-ingest). */
  async function boundClient(): Promise<{ bp: BunkerPointer; c: RawClient }> {
    const bp = await newBunker();
    const c = await client(bp.pubkey);
    assert.equal((await c.answer(await c.send('connect', [bp.pubkey, bp.secret!]))).result, 'ack');
    await waitFor(
      () => ingest.directory.get(bp.pubkey)?.clientPubkey === c.pk,
      5000,
      'relay-ingest to learn the binding',
    );
    return { bp, c };
  }

  it('answers requests dated just inside the window on both sides, and none dated beyond either side', async () => {
    const { c } = await boundClient();
    const futureBefore = await dropped('future');
    const staleBefore = await dropped('stale');
    // Validly signed by the bound client: only their dates are wrong.
    const farFuture = await c.send('ping', [], now() + MAX_FUTURE + 240);
    const justPast = await c.send('ping', [], now() - MAX_AGE - 30);
    const nearFuture = await c.send('ping', [], now() + MAX_FUTURE - 10);
    const nearPast = await c.send('ping', [], now() - MAX_AGE + 15);
    assert.equal((await c.answer(nearFuture)).result, 'pong');
    assert.equal((await c.answer(nearPast)).result, 'pong');
    await waitFor(
      async () => (await dropped('future')) === futureBefore + 1 && (await dropped('stale')) === staleBefore + 1,
      5000,
      'both drops counted',
    );
    await sleep(LATE_ANSWER_MS);
    assert.deepEqual(c.answers(farFuture), [], 'a request dated past the future bound is not answered');
    assert.deepEqual(c.answers(justPast), [], 'a request older than the age bound is not answered');
  });

  it('does not answer a request again when relay-ingest restarts and the relay sends it again', async () => {
    const { bp, c } = await boundClient();
    const signed = c.request('sign_event', [
      JSON.stringify({ kind: 1, content: 'once only', tags: [], created_at: now() }),
    ]);
    const ahead = c.request('ping', [], now() + MAX_FUTURE - 5);
    await c.publish(signed.event);
    await c.publish(ahead.event);
    assert.ok((await c.answer(signed.rid)).result.includes('once only'));
    assert.equal((await c.answer(ahead.rid)).result, 'pong');
    const redis = createRedis(farm.rt.redisUrl);
    const claimTtl = await redis
      .ttl(requestClaimKey(farm.config.KEY_PREFIX, ahead.event.id))
      .finally(() => redis.quit());
    assert.ok(claimTtl >= MAX_AGE + MAX_FUTURE, `the claim (${claimTtl} s) outlives the window`);

    // A new relay-ingest: nothing in memory, same Redis. Relays do not store kind 24133, so the replay is
    // an attacker (or a relay that passes events on) sending both requests again: inject() delivers them
    // to the new subscription as a relay would, past the test relay's own cache of seen ids.
    const duplicatesBefore = await dropped('duplicate');
    const subscribed = subscriptionsTo(bp.pubkey);
    await ingest.stop();
    ingest = await startIngest();
    await waitFor(() => subscriptionsTo(bp.pubkey) > subscribed, 5000, 'the new relay-ingest to subscribe');
    await relay.inject(signed.event);
    await relay.inject(ahead.event);
    await waitFor(
      async () => (await dropped('duplicate')) >= duplicatesBefore + 2,
      5000,
      'the replays to be seen and dropped',
    );
    await sleep(LATE_ANSWER_MS);
    assert.equal(c.answers(signed.rid).length, 1, 'signed once');
    assert.equal(c.answers(ahead.rid).length, 1, 'answered once');
    // The new relay-ingest serves new requests as usual.
    assert.equal((await c.answer(await c.send('ping'))).result, 'pong');
  });

  it('answers requests dated exactly at either edge of the window: both bounds are inclusive', async () => {
    const { c } = await boundClient();
    // relay-ingest (in this process) counts whole seconds of the same clock. A request sent early in a
    // second, dated exactly MAX_AGE before it, arrives within that second; one that crossed into the next
    // second is stale, so the age edge is tried up to three times, at the start of a second each.
    const answeredOrDropped = async (rid: string, reason: string, before: number) => {
      await waitFor(
        async () => c.answers(rid).length > 0 || (await dropped(reason)) > before,
        5000,
        `${rid} answered or dropped`,
      );
      return c.answers(rid).length > 0;
    };
    const startOfSecond = () => sleep(1000 - (Date.now() % 1000) + 5);
    let atAge = false;
    for (let attempt = 0; attempt < 3 && !atAge; attempt++) {
      await startOfSecond();
      const staleBefore = await dropped('stale');
      atAge = await answeredOrDropped(await c.send('ping', [], now() - MAX_AGE), 'stale', staleBefore);
    }
    assert.ok(atAge, `a request exactly ${MAX_AGE} s old is answered`);
    // Dated exactly MAX_FUTURE ahead: answered whether it arrives in the same second or the next.
    await startOfSecond();
    const futureBefore = await dropped('future');
    assert.ok(
      await answeredOrDropped(await c.send('ping', [], now() + MAX_FUTURE), 'future', futureBefore),
      `a request dated ${MAX_FUTURE} s ahead is answered`,
    );
  });

  it('answers a request whose claim Redis refused once a copy comes again: a failed claim does not mark it seen', async () => {
    // A relay-ingest whose Redis user can lose SET, as a Redis that is full (OOM) or a read-only replica
    // after a failover refuses writes while it still answers. Every other command keeps working.
    const admin = createRedis(farm.rt.redisUrl);
    const aclUser = `kf-claim-${process.pid}-${Date.now()}`;
    const aclPassword = recordSecret(randomBytes(16).toString('hex'));
    // ACL users live on each server: on a cluster, every node gets the same.
    await untilReady(admin);
    const aclServers = isCluster(admin) ? admin.nodes('all') : [admin];
    const acl = (...args: string[]) => Promise.all(aclServers.map((server) => server.call('ACL', ...args)));
    await acl('SETUSER', aclUser, 'on', `>${aclPassword}`, '~*', '&*', '+@all');
    let viaUser: RedisTarget;
    if (typeof farm.rt.redisUrl === 'string') {
      const url = new URL(farm.rt.redisUrl);
      url.username = aclUser;
      url.password = aclPassword;
      viaUser = url.toString();
    } else viaUser = { ...farm.rt.redisUrl, username: aclUser, password: aclPassword };
    const logName = `nip46-abuse-claim-${process.pid}`;
    await ingest.stop();
    ingest = await startIngest(viaUser, testLogger(logName));
    try {
      const { c } = await boundClient();
      await acl('SETUSER', aclUser, '-set');
      const unavailableBefore = await dropped('redis_unavailable');
      const req = c.request('ping');
      await c.publish(req.event);
      await waitFor(
        async () => (await dropped('redis_unavailable')) > unavailableBefore,
        5000,
        'the failed claim to be counted as redis_unavailable',
      );
      await waitFor(
        () =>
          readLog(logName).some(
            (l) =>
              l.msg === 'claiming a nip46 request failed' && l.eventId === req.event.id && /NOPERM/.test(String(l.err)),
          ),
        5000,
        'the failed claim logged with its event id and error',
      );
      assert.deepEqual(c.answers(req.rid), [], 'nothing was queued for it');

      // Redis takes writes again; the request comes once more (from another relay, or the client's retry).
      await acl('SETUSER', aclUser, '+set');
      await relay.inject(req.event);
      assert.equal((await c.answer(req.rid)).result, 'pong');
      await sleep(LATE_ANSWER_MS);
      assert.equal(c.answers(req.rid).length, 1, 'answered once');
    } finally {
      await ingest.stop();
      ingest = await startIngest();
      await acl('DELUSER', aclUser);
      await admin.quit();
    }
  });

  it('limits requests from client keys other than the bound client before they are queued; the bound client is not limited', async () => {
    const { bp, c } = await boundClient(); // its connect, sent unbound, used 1 of the bunker's allowance
    const limitedBefore = await dropped('rate_limited');
    const stranger = await client(bp.pubkey);
    const flood: string[] = [];
    for (let i = 0; i < 50; i++) flood.push(await stranger.send('ping'));
    // The bound client sends more than an unbound key may, at the same time, and every one is answered.
    const own: string[] = [];
    for (let i = 0; i < PER_CLIENT + 5; i++) own.push(await c.send('ping'));
    for (const rid of own) assert.equal((await c.answer(rid)).result, 'pong');
    await waitFor(
      async () => stranger.answered + (await dropped('rate_limited')) - limitedBefore >= 50,
      5000,
      'the flood to be handled',
    );
    await sleep(LATE_ANSWER_MS);
    assert.equal(stranger.answered, PER_CLIENT, `${PER_CLIENT} of the stranger's 50 requests reached a worker`);
    assert.equal((await dropped('rate_limited')) - limitedBefore, 50 - PER_CLIENT, 'the rest were dropped and counted');
    assert.match(stranger.answers(flood[0]!)[0]!.error ?? '', /not connected/);

    // New keys cost nothing to make: the bunker's own allowance bounds them all together.
    const crowd = await Promise.all([0, 1, 2, 3].map(() => client(bp.pubkey)));
    for (const s of crowd) for (let i = 0; i < PER_CLIENT; i++) await s.send('ping');
    const room = PER_BUNKER - 1 - PER_CLIENT;
    await waitFor(
      async () =>
        crowd.reduce((n, s) => n + s.answered, 0) +
          (await dropped('rate_limited')) -
          limitedBefore -
          (50 - PER_CLIENT) >=
        40,
      5000,
      'the crowd to be handled',
    );
    await sleep(LATE_ANSWER_MS);
    assert.equal(
      crowd.reduce((n, s) => n + s.answered, 0),
      room,
      `the bunker took ${room} more unbound requests, no more`,
    );
    assert.equal((await c.answer(await c.send('ping'))).result, 'pong', 'the bound client is still answered');
  });

  it('counts unbound requests atomically across relay-ingest replicas', async () => {
    const a = createRedis(farm.rt.redisUrl);
    const b = createRedis(farm.rt.redisUrl);
    try {
      const opts = { keyPrefix: farm.config.KEY_PREFIX, perClient: PER_CLIENT, perBunker: PER_BUNKER };
      const replicas = [new UnboundClientLimit(a, opts), new UnboundClientLimit(b, opts)];
      const bunker = 'b'.repeat(64);
      const clientKey = 'c'.repeat(64);
      const verdicts = await Promise.all(
        Array.from({ length: 40 }, (_, i) => replicas[i % 2]!.take(bunker, clientKey)),
      );
      assert.equal(verdicts.filter((v) => v === 'ok').length, PER_CLIENT);
      assert.equal(verdicts.filter((v) => v === 'client_limited').length, 40 - PER_CLIENT);
      const ttl = await a.ttl(`${farm.config.KEY_PREFIX}:nip46:unbound:{${bunker}}:${clientKey}`);
      assert.ok(ttl > 0 && ttl <= 60, 'a counter lives one window');
      // Many client keys, one request each, at another bunker: the bunker's own limit is what refuses.
      const crowded = 'd'.repeat(64);
      const crowd = await Promise.all(
        Array.from({ length: 40 }, (_, i) => replicas[i % 2]!.take(crowded, i.toString(16).padStart(64, 'e'))),
      );
      assert.equal(crowd.filter((v) => v === 'ok').length, PER_BUNKER);
      assert.equal(crowd.filter((v) => v === 'bunker_limited').length, 40 - PER_BUNKER);
    } finally {
      await a.quit();
      await b.quit();
    }
  });
});
