// NIP-46 over real relays (@nostr-relay/core on ws) with nostr-tools' BunkerSigner as the client, against an
// in-process farm (api, relay-ingest, workers) on real Redis and PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { finalizeEvent, generateSecretKey, getPublicKey, nip04, nip44, verifyEvent, type Event } from 'nostr-tools';
import { BunkerSigner, createNostrConnectURI, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation as usePoolWebSocket } from 'nostr-tools/pool';
import { Relay, useWebSocketImplementation as useRelayWebSocket } from 'nostr-tools/relay';
import WebSocket from 'ws';
import { startRelayIngest, type RelayIngest } from '../../relay-ingest/index.js';
import { ingestMetrics } from '../../relay-ingest/metrics.js';
import { ShardQueue } from '../../shared/farm/shard-queue.js';
import { metrics } from '../../shared/metrics.js';
import { requestClaimKey } from '../../shared/nip46/channels.js';
import { createRedis } from '../../shared/redis.js';
import { shardOf } from '../../shared/shard.js';
import { call, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { FAST_RELAY, waitForBunkerListener } from '../support/bunker.js';
import { waitFor, within } from '../support/wait.js';
import { scanKeys, shardNamesOf } from '../support/env.js';

usePoolWebSocket(WebSocket);
useRelayWebSocket(WebSocket);

/** A client key pair whose secret is recorded for the log scan. */
function clientKey() {
  const sk = generateSecretKey();
  recordSecret(bytesToHex(sk));
  return { sk, pk: getPublicKey(sk) };
}

function counter(
  c: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> },
  labels: Record<string, string> = {},
) {
  return c
    .get()
    .then((m) =>
      m.values
        .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
        .reduce((s, v) => s + v.value, 0),
    );
}

/** A hand-made NIP-46 client: any payload, either encryption, and every response it sees. */
class RawClient {
  readonly key = clientKey();
  readonly responses: Event[] = [];
  private relays: Relay[] = [];

  constructor(readonly bunkerPubkey: string) {}

  async listen(urls: string[]): Promise<void> {
    for (const url of urls) {
      const relay = await Relay.connect(url);
      this.relays.push(relay);
      await new Promise<void>((resolve) => {
        relay.subscribe([{ kinds: [24133], authors: [this.bunkerPubkey], '#p': [this.key.pk] }], {
          onevent: (e) => {
            if (!this.responses.some((r) => r.id === e.id)) this.responses.push(e);
          },
          oneose: () => resolve(),
        });
      });
    }
  }

  request(content: string, createdAt = Math.floor(Date.now() / 1000)): Event {
    return finalizeEvent(
      { kind: 24133, created_at: createdAt, tags: [['p', this.bunkerPubkey]], content },
      this.key.sk,
    );
  }

  nip44(payload: unknown): string {
    return nip44.encrypt(
      typeof payload === 'string' ? payload : JSON.stringify(payload),
      nip44.getConversationKey(this.key.sk, this.bunkerPubkey),
    );
  }

  async publish(event: Event, urls: string[]): Promise<void> {
    await Promise.all(
      urls.map(async (url) => {
        const r = await Relay.connect(url);
        try {
          await r.publish(event);
        } finally {
          r.close();
        }
      }),
    );
  }

  /** Decrypted responses to request id `id`. */
  answersTo(id: string): { id: string; result: string; error?: string }[] {
    return this.responses
      .map((e) => {
        const text = e.content.includes('?iv=')
          ? nip04.decrypt(this.key.sk, this.bunkerPubkey, e.content)
          : nip44.decrypt(e.content, nip44.getConversationKey(this.key.sk, this.bunkerPubkey));
        return JSON.parse(text) as { id: string; result: string; error?: string };
      })
      .filter((r) => r.id === id);
  }

  async answer(id: string, ms = 5000) {
    await waitFor(() => this.answersTo(id).length > 0, ms, `response to ${id}`);
    return this.answersTo(id)[0]!;
  }

  close(): void {
    for (const r of this.relays) r.close();
  }
}

describe('NIP-46 bunker over relays', () => {
  let farm: TestFarm;
  let relayA: TestRelay;
  let relayB: TestRelay;
  let base: string;
  let user: Awaited<ReturnType<typeof registerUser>>;
  const pools: SimplePool[] = [];
  const signers: BunkerSigner[] = [];
  const raws: RawClient[] = [];

  before(async () => {
    relayA = await startTestRelay();
    relayB = await startTestRelay();
    farm = await startTestFarm(
      'nip46',
      { BUNKER_RELAYS: `${relayA.url},${relayB.url}`, RPC_TIMEOUT_MS: '3000' },
      { api: true, workers: true, relayIngest: { relay: FAST_RELAY, publishRetryDelayMs: 100 } },
    );
    base = farm.url;
    user = await registerUser(base);
  });

  after(async () => {
    for (const s of signers) await s.close().catch(() => undefined);
    for (const p of pools) p.destroy();
    for (const r of raws) r.close();
    await farm?.stop();
    await relayA?.stop();
    await relayB?.stop();
  });

  /**
   * Creates a bunker, waits until relay-ingest listens for it on `relay` in particular (the api answers
   * once it listens on one of the two relays, and these tests publish on one), returns its pointer.
   */
  async function newBunker(
    body: Record<string, unknown> = {},
    relay = relayA,
  ): Promise<{ bp: BunkerPointer; id: string; url: string }> {
    const res = await call(base, 'POST', '/api/user/bunker/create', { app_name: 'test app', ...body }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const bp = (await parseBunkerInput(res.body.bunker_url))!;
    recordSecret(bp.secret!);
    await waitForBunkerListener(relay, bp.pubkey);
    return { bp, id: res.body.authorization_id, url: res.body.bunker_url };
  }

  function signerFor(bp: BunkerPointer, sk = clientKey().sk): BunkerSigner {
    const pool = new SimplePool();
    pools.push(pool);
    const s = BunkerSigner.fromBunker(sk, { ...bp, relays: [...bp.relays] }, { pool });
    signers.push(s);
    return s;
  }

  /** A new bunker and a raw client on relay A that has connected to it with the secret (NIP-44). */
  async function connectedRawClient(): Promise<{ bp: BunkerPointer; c: RawClient }> {
    const { bp } = await newBunker();
    const c = rawClient(bp.pubkey);
    await c.listen([relayA.url]);
    await c.publish(c.request(c.nip44({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] })), [relayA.url]);
    await c.answer('c1');
    return { bp, c };
  }

  function rawClient(bunkerPubkey: string): RawClient {
    const c = new RawClient(bunkerPubkey);
    raws.push(c);
    return c;
  }

  it('serves BunkerSigner end to end: connect, get_public_key, sign_event, NIP-44/NIP-04 both ways, ping, switch_relays, logout', async () => {
    const { bp } = await newBunker();
    const signer = signerFor(bp);
    await within(5000, signer.connect(), 'connect');
    assert.equal(await within(5000, signer.getPublicKey(), 'get_public_key'), user.pubkey);

    const signed = await within(
      5000,
      signer.signEvent({
        kind: 1,
        content: 'hello over nip46',
        tags: [['t', 'test']],
        created_at: Math.floor(Date.now() / 1000),
      }),
      'sign_event',
    );
    assert.equal(signed.pubkey, user.pubkey);
    assert.ok(verifyEvent(signed));

    const outside = clientKey();
    const ct44 = await within(5000, signer.nip44Encrypt(outside.pk, 'secret note 44'), 'nip44_encrypt');
    assert.equal(nip44.decrypt(ct44, nip44.getConversationKey(outside.sk, user.pubkey)), 'secret note 44');
    const in44 = nip44.encrypt('to the user 44', nip44.getConversationKey(outside.sk, user.pubkey));
    assert.equal(await within(5000, signer.nip44Decrypt(outside.pk, in44), 'nip44_decrypt'), 'to the user 44');

    const ct04 = await within(5000, signer.nip04Encrypt(outside.pk, 'secret note 04'), 'nip04_encrypt');
    assert.equal(nip04.decrypt(outside.sk, user.pubkey, ct04), 'secret note 04');
    const in04 = nip04.encrypt(outside.sk, user.pubkey, 'to the user 04');
    assert.equal(await within(5000, signer.nip04Decrypt(outside.pk, in04), 'nip04_decrypt'), 'to the user 04');

    await within(5000, signer.ping(), 'ping');
    assert.equal(typeof (await within(5000, signer.switchRelays(), 'switch_relays')), 'boolean');
    const relays = JSON.parse(
      await within(5000, signer.sendRequest('switch_relays', []), 'switch_relays raw'),
    ) as string[];
    assert.deepEqual(relays.sort(), [relayA.url, relayB.url].sort());

    await within(5000, signer.logout(), 'logout');
    // The authorization is over: the same client is now refused.
    const again = signerFor(bp, (signer as unknown as { secretKey: Uint8Array }).secretKey);
    await assert.rejects(within(5000, again.ping(), 'ping after logout'), /authorization revoked/);
  });

  it('refuses a second client presenting a used secret, and any method before connect', async () => {
    const { bp } = await newBunker();
    const first = signerFor(bp);
    await within(5000, first.connect(), 'first connect');
    const second = signerFor(bp);
    await assert.rejects(within(5000, second.connect(), 'second connect'), /already connected to another client/);
    await assert.rejects(within(5000, second.getPublicKey(), 'unbound get_public_key'), /not connected/);
    // The bound client may connect again, even without the secret.
    const again = signerFor({ ...bp, secret: null }, (first as unknown as { secretKey: Uint8Array }).secretKey);
    await within(5000, again.connect(), 'reconnect');
    const wrong = await newBunker();
    const guesser = signerFor({ ...wrong.bp, secret: 'not-the-secret' });
    await assert.rejects(within(5000, guesser.connect(), 'wrong secret'), /invalid secret/);
  });

  it('refuses a revoked authorization with an error reply', async () => {
    const { bp, id } = await newBunker();
    const signer = signerFor(bp);
    await within(5000, signer.connect(), 'connect');
    await within(5000, signer.ping(), 'ping');
    const res = await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: id }, user.session);
    assert.equal(res.status, 200);
    await assert.rejects(within(5000, signer.ping(), 'ping after revoke'), /authorization revoked/);
    await assert.rejects(
      within(5000, signer.signEvent({ kind: 1, content: 'x', tags: [], created_at: 1 }), 'sign after revoke'),
      /authorization revoked/,
    );
  });

  it('applies the policy to signing and to decryption', async () => {
    const { bp } = await newBunker({ policy_slug: 'wallet' });
    const signer = signerFor(bp);
    await within(5000, signer.connect(), 'connect');
    const zap = await within(
      5000,
      signer.signEvent({ kind: 9734, content: 'allowed', tags: [], created_at: 1 }),
      'kind 9734',
    );
    assert.ok(verifyEvent(zap));
    await assert.rejects(
      within(5000, signer.signEvent({ kind: 1, content: 'note', tags: [], created_at: 1 }), 'kind 1'),
      /denied by policy/,
    );
    const outside = clientKey();
    const ct = nip44.encrypt('private', nip44.getConversationKey(outside.sk, user.pubkey));
    await assert.rejects(within(5000, signer.nip44Decrypt(outside.pk, ct), 'decrypt'), /denied by policy/);
    await assert.rejects(within(5000, signer.nip04Encrypt(outside.pk, 'x'), 'encrypt'), /denied by policy/);
  });

  it('answers the same request seen on two relays once', async () => {
    const { bp } = await newBunker();
    await waitForBunkerListener(relayB, bp.pubkey, 5000, 'subscription on relay B');
    const c = rawClient(bp.pubkey);
    await c.listen([relayA.url, relayB.url]);
    const duplicatesBefore = await counter(ingestMetrics.eventsDropped, { reason: 'duplicate' });
    const connect = c.request(c.nip44({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] }));
    await c.publish(connect, [relayA.url, relayB.url]);
    assert.equal((await c.answer('c1')).result, 'ack');
    const ping = c.request(c.nip44({ id: 'p1', method: 'ping', params: [] }));
    await c.publish(ping, [relayA.url, relayB.url]);
    assert.equal((await c.answer('p1')).result, 'pong');
    // Each request reached relay-ingest twice (relays A and B): once the second copy of both is counted as a
    // duplicate, no copy is left that could make a second answer.
    await waitFor(
      async () => (await counter(ingestMetrics.eventsDropped, { reason: 'duplicate' })) >= duplicatesBefore + 2,
      5000,
      'both second copies dropped',
    );
    assert.equal(c.answersTo('p1').length, 1, 'one response event');
    assert.equal(
      relayA.published(bp.pubkey).filter((e) => e.tags.some((t) => t[1] === c.key.pk)).length,
      2,
      'two responses in all (connect, ping)',
    );
  });

  it('makes one job of a request when two relay-ingest replicas see it', async () => {
    const second: RelayIngest = await startRelayIngest({
      config: farm.config,
      logger: farm.rt.logger,
      db: farm.rt.db,
      redisUrl: farm.rt.redisUrl,
      tuning: { relay: FAST_RELAY },
    });
    const redis = createRedis(farm.rt.redisUrl);
    try {
      const { bp } = await newBunker();
      for (const relay of [relayA, relayB]) {
        await waitFor(
          () => relay.stats.reqs.filter(([, fs]) => fs.some((f) => f['#p']?.includes(bp.pubkey))).length >= 2,
          5000,
          'both replicas subscribed',
        );
      }
      const c = rawClient(bp.pubkey);
      await c.listen([relayA.url]);
      const duplicatesBefore = await counter(ingestMetrics.eventsDropped, { reason: 'duplicate' });
      const connect = c.request(c.nip44({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] }));
      await c.publish(connect, [relayA.url, relayB.url]);
      assert.equal((await c.answer('c1')).result, 'ack');
      const ping = c.request(c.nip44({ id: 'p2', method: 'ping', params: [] }));
      await c.publish(ping, [relayA.url, relayB.url]);
      assert.equal((await c.answer('p2')).result, 'pong');
      // Two replicas on two relays see each request four times: one is taken, and once the other three of
      // both requests are counted as duplicates, nothing is left that could make a second answer.
      await waitFor(
        async () => (await counter(ingestMetrics.eventsDropped, { reason: 'duplicate' })) >= duplicatesBefore + 6,
        5000,
        'every other copy dropped',
      );
      assert.equal(c.answersTo('p2').length, 1);

      const names = shardNamesOf(farm.config);
      const shard = shardOf(user.pubkey, farm.config.SHARD_COUNT);
      // Every job of the shard: waiting or running (the stream) and finished (their records).
      const datas: string[] = (await redis.xrange(names.jobs(shard), '-', '+')).map(
        ([, fields]) => fields[fields.indexOf('data') + 1]!,
      );
      for (const key of await scanKeys(redis, names.job(shard, '*')))
        datas.push(JSON.stringify((JSON.parse((await redis.get(key))!) as { data: unknown }).data));
      const carrying = datas
        .map((d) => JSON.parse(d) as { type?: string; items?: { id: string }[] })
        .filter((d) => d.type === 'nip46' && d.items?.some((i) => i.id === ping.id));
      assert.equal(carrying.length, 1, 'one job carries the request');
      assert.ok(await redis.get(requestClaimKey(farm.config.KEY_PREFIX, ping.id)), 'the request was claimed');
    } finally {
      await second.stop();
      await redis.quit();
    }
  });

  it('drops and counts a request for a full shard, and answers again once the shard has room', async () => {
    const { c } = await connectedRawClient();
    const redis = createRedis(farm.rt.redisUrl);
    const names = shardNamesOf(farm.config);
    const shard = shardOf(user.pubkey, farm.config.SHARD_COUNT);
    const queue = new ShardQueue(redis, names, { limit: farm.config.QUEUE_LIMIT });
    let filled = 0;
    const unfill = async () => {
      await redis.hincrby(names.meter(shard), 'count', -filled);
      filled = 0;
    };
    try {
      // Other callers' items, up to the limit, held in the shard's count: the shard is full.
      filled = farm.config.QUEUE_LIMIT - (await queue.depth(shard));
      await redis.hincrby(names.meter(shard), 'count', filled);
      const droppedBefore = await counter(metrics.nip46QueueDropped);
      const rejectedBefore = await counter(metrics.backpressureRejected, { door: 'nip46' });
      const refused = c.request(c.nip44({ id: 'full1', method: 'ping', params: [] }));
      await c.publish(refused, [relayA.url]);
      await waitFor(
        async () => (await counter(metrics.nip46QueueDropped)) === droppedBefore + 1,
        5000,
        'a counted drop',
      );
      assert.equal(await counter(metrics.backpressureRejected, { door: 'nip46' }), rejectedBefore + 1);
      assert.equal(await queue.depth(shard), farm.config.QUEUE_LIMIT, 'the shard never holds more than the limit');
      assert.equal(await redis.xlen(names.jobs(shard)), 0, 'no job was added for it');

      // Admission refused it before any job was made (the counted drop above), and gave its claim back.
      await waitFor(
        async () => (await redis.exists(requestClaimKey(farm.config.KEY_PREFIX, refused.id))) === 0,
        5000,
        'the claim given back',
      );

      await unfill();
      await c.publish(c.request(c.nip44({ id: 'room1', method: 'ping', params: [] })), [relayA.url]);
      assert.equal((await c.answer('room1')).result, 'pong');
      assert.equal(c.answersTo('full1').length, 0, 'the dropped request was never run');
      // A copy of the refused request seen later (another relay, a resend) is taken and answered.
      await c.publish(refused, [relayB.url]);
      assert.equal((await c.answer('full1')).result, 'pong');
    } finally {
      await unfill();
      await redis.quit();
    }
  });

  it("reconnects by itself after a relay restart: a request sent before it resubscribed is lost, the client's retry is answered", async () => {
    const { bp } = await newBunker({ relays: [relayB.url] }, relayB);
    const c = rawClient(bp.pubkey);
    const connect = c.request(c.nip44({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] }));
    await c.listen([relayB.url]);
    await c.publish(connect, [relayB.url]);
    assert.equal((await c.answer('c1')).result, 'ack');
    c.close();

    await relayB.stop();
    const ready = await call(base, 'GET', '/healthz/ready');
    assert.equal(ready.status, 200, 'still ready with one relay of two');
    const reqsBefore = relayB.stats.reqs.length;
    const resubscribed = () =>
      relayB.stats.reqs.slice(reqsBefore).find(([, fs]) => fs.some((f) => f['#p']?.includes(bp.pubkey)));
    // The relay comes back; relay-ingest reconnects, but its subscription is held: it is not listening yet.
    relayB.holdReqs([bp.pubkey]);
    await relayB.start();
    await waitFor(() => resubscribed() !== undefined, 8000, 'relay-ingest reconnected and resubscribing');
    const c2 = rawClient(bp.pubkey);
    (c2 as unknown as { key: ReturnType<typeof clientKey> }).key = c.key;
    await c2.listen([relayB.url]);
    const away = c2.request(c2.nip44({ id: 'away', method: 'ping', params: [] }));
    await c2.publish(away, [relayB.url]);
    relayB.releaseReqs();

    // Like a NIP-46 client, retry a request that got no answer: the retry is answered.
    let answered: { result: string } | undefined;
    for (let attempt = 1; attempt <= 3 && !answered; attempt++) {
      const id = `retry-${attempt}`;
      await c2.publish(c2.request(c2.nip44({ id, method: 'ping', params: [] })), [relayB.url]);
      answered = await c2.answer(id, 3000).catch(() => undefined);
    }
    assert.equal(answered?.result, 'pong', 'a retry after the reconnect is answered');
    // A relay that follows NIP-01 keeps no ephemeral event, so nothing can bring the lost request back:
    // relay-ingest is subscribed (the retry's answer shows it) and the relay holds no kind 24133.
    assert.equal(
      [...relayB.repo.events.values()].filter((e) => e.kind === 24133).length,
      0,
      'the relay stored no NIP-46 event',
    );
    assert.equal(c2.answersTo('away').length, 0, 'the request sent while relay-ingest was away is lost');
    // relay-ingest resubscribed by itself, with a since window reaching back past the time away, for
    // relays that do keep such events a while.
    const resub = resubscribed()!;
    assert.ok(resub[1][0]!.since! <= away.created_at - 60, 'the since window covers the time away');
  });

  it('answers NIP-04 requests in NIP-04', async () => {
    const { bp } = await newBunker();
    const c = rawClient(bp.pubkey);
    await c.listen([relayA.url]);
    const enc = (p: unknown) => nip04.encrypt(c.key.sk, bp.pubkey, JSON.stringify(p));
    await c.publish(c.request(enc({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] })), [relayA.url]);
    assert.equal((await c.answer('c1')).result, 'ack');
    await c.publish(c.request(enc({ id: 'k1', method: 'get_public_key', params: [] })), [relayA.url]);
    assert.equal((await c.answer('k1')).result, user.pubkey);
    assert.ok(
      c.responses.every((e) => e.content.includes('?iv=')),
      'responses are NIP-04',
    );
  });

  it('survives garbage: error replies where a reply is possible, counted drops where not', async () => {
    const { bp, c } = await connectedRawClient();

    const droppedBefore = await counter(metrics.nip46Processed, { outcome: 'dropped' });
    const forgedBefore = await counter(ingestMetrics.eventsDropped, { reason: 'forged' });
    const oversizedBefore = await counter(ingestMetrics.eventsDropped, { reason: 'oversized' });

    // Unknown method, params not an array, an unparseable event: error replies.
    await c.publish(c.request(c.nip44({ id: 'u1', method: 'make_coffee', params: [] })), [relayA.url]);
    assert.match((await c.answer('u1')).error ?? '', /unknown method/);
    await c.publish(c.request(c.nip44({ id: 'b1', method: 'sign_event', params: 'nope' })), [relayA.url]);
    assert.match((await c.answer('b1')).error ?? '', /params must be an array/);
    await c.publish(c.request(c.nip44({ id: 's1', method: 'sign_event', params: ['{not json'] })), [relayA.url]);
    assert.match((await c.answer('s1')).error ?? '', /sign_event/);
    await c.publish(c.request(c.nip44({ id: 'n1', method: 'nip44_encrypt', params: ['zz', 'x'] })), [relayA.url]);
    assert.match((await c.answer('n1')).error ?? '', /peer pubkey/);
    // Checked as on the HTTP door: NIP-44 v2 has no payload for an empty message.
    await c.publish(c.request(c.nip44({ id: 'e1', method: 'nip44_encrypt', params: [bp.pubkey, ''] })), [relayA.url]);
    assert.equal((await c.answer('e1')).error, 'nip44_encrypt: plaintext must not be empty');

    // No reply possible: garbage content, wrong key, JSON without an id.
    await c.publish(c.request('this is not a ciphertext'), [relayA.url]);
    const stranger = generateSecretKey();
    await c.publish(
      c.request(
        nip44.encrypt(
          JSON.stringify({ id: 'w1', method: 'ping', params: [] }),
          nip44.getConversationKey(stranger, getPublicKey(generateSecretKey())),
        ),
      ),
      [relayA.url],
    );
    await c.publish(c.request(c.nip44('{"method":"ping"')), [relayA.url]);
    await waitFor(
      async () => (await counter(metrics.nip46Processed, { outcome: 'dropped' })) >= droppedBefore + 3,
      5000,
      'three counted drops',
    );

    // Forged and oversized events never reach a worker.
    const good = c.request(c.nip44({ id: 'f1', method: 'ping', params: [] }));
    await relayA.inject({ ...good, sig: good.sig.replace(/^./, good.sig[0] === '0' ? '1' : '0') });
    await relayA.inject({ ...c.request('x'.repeat(1_100_000)) });
    await waitFor(
      async () => (await counter(ingestMetrics.eventsDropped, { reason: 'forged' })) > forgedBefore,
      5000,
      'forged drop',
    );
    await waitFor(
      async () => (await counter(ingestMetrics.eventsDropped, { reason: 'oversized' })) > oversizedBefore,
      5000,
      'oversized drop',
    );
    assert.equal(c.answersTo('f1').length, 0);

    // And the bunker still answers.
    await c.publish(c.request(c.nip44({ id: 'p9', method: 'ping', params: [] })), [relayA.url]);
    assert.equal((await c.answer('p9')).result, 'pong');
  });

  it("a forged copy carrying a real request's id, seen first, does not shadow the real request", async () => {
    const { c } = await connectedRawClient();
    const forgedBefore = await counter(ingestMetrics.eventsDropped, { reason: 'forged' });
    const real = c.request(c.nip44({ id: 'sh1', method: 'ping', params: [] }));
    await relayA.inject({ ...real, sig: real.sig.replace(/^./, real.sig[0] === '0' ? '1' : '0') });
    await c.publish(real, [relayA.url]);
    assert.equal((await c.answer('sh1')).result, 'pong');
    assert.equal(await counter(ingestMetrics.eventsDropped, { reason: 'forged' }), forgedBefore + 1);
    assert.equal(c.answersTo('sh1').length, 1);
  });

  it('retries a refused publish of a response', async () => {
    const { bp } = await newBunker();
    const c = rawClient(bp.pubkey);
    await c.listen([relayA.url]);
    const retriesBefore = await counter(ingestMetrics.publishRetries);
    relayA.refuseNext.set(bp.pubkey, 1);
    relayB.refuseNext.set(bp.pubkey, 1);
    await c.publish(c.request(c.nip44({ id: 'c1', method: 'connect', params: [bp.pubkey, bp.secret] })), [relayA.url]);
    assert.equal((await c.answer('c1')).result, 'ack');
    assert.ok((await counter(ingestMetrics.publishRetries)) > retriesBefore);
  });

  it('connects a pasted nostrconnect:// URI (BunkerSigner.fromURI)', async () => {
    const client = clientKey();
    const secret = recordSecret(`nc-${bytesToHex(generateSecretKey()).slice(0, 24)}`);
    const uri = createNostrConnectURI({ clientPubkey: client.pk, relays: [relayA.url], secret, name: 'Paste App' });
    const pool = new SimplePool();
    pools.push(pool);
    const pending = BunkerSigner.fromURI(client.sk, uri, { pool }, 10_000);
    await waitFor(
      () => relayA.stats.reqs.some(([, fs]) => fs.some((f) => f['#p']?.includes(client.pk))),
      5000,
      'the app listening',
    );
    const res = await call(base, 'POST', '/api/user/nostrconnect', { uri, policy_slug: 'full' }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.client_pubkey, client.pk);
    const signer = await within(10_000, pending, 'fromURI');
    signers.push(signer);
    assert.equal(await within(5000, signer.getPublicKey(), 'get_public_key'), user.pubkey);
    const ev = await within(
      5000,
      signer.signEvent({ kind: 1, content: 'via nostrconnect', tags: [], created_at: 1 }),
      'sign_event',
    );
    assert.ok(verifyEvent(ev));

    const bad = await call(
      base,
      'POST',
      '/api/user/nostrconnect',
      { uri: 'nostrconnect://zz?relay=ws://x' },
      user.session,
    );
    assert.equal(bad.status, 400);
  });

  it('publishes discovery at /.well-known/nostr.json and relay readiness', async () => {
    const res = await call(base, 'GET', `/.well-known/nostr.json?name=${user.pubkey}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.body.names[user.pubkey], user.pubkey);
    assert.deepEqual([...res.body.nip46.relays].sort(), [relayA.url, relayB.url].sort());
    assert.match(res.body.nip46.nostrconnect_url, /<nostrconnect>$/);
    assert.ok(Array.isArray(res.body.nip46[user.pubkey]));
    const unknown = await call(base, 'GET', `/.well-known/nostr.json?name=${'a'.repeat(64)}`);
    assert.deepEqual(unknown.body.names, {});
    const ready = await call(base, 'GET', '/healthz/ready');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.checks.relays, 'ok');
  });
});
