// Key prefetch against the real farm: issuing an access token warms the user's key in the worker owning
// the shard, so the session's first sign_event is a cache hit; the hint on Redis names a key id and a
// shard, nothing secret; what a user sends cannot make a worker load someone else's key; and a flood of
// hints on Redis runs a bounded number of loads.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateSecretKey, getPublicKey, nip19 } from 'nostr-tools';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { publishEviction } from '../../shared/evictions.js';
import { encodeKeyPrefetchHint } from '../../shared/key-prefetch.js';
import { registry } from '../../shared/metrics.js';
import { closeRedis, createRedis, type RedisClient } from '../../shared/redis.js';
import { ShardNames, shardOf } from '../../shared/shard.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret, testLogFile } from '../support/logs.js';
import { waitFor } from '../support/wait.js';

const NAME = 'key-prefetch';
const MAX_IN_FLIGHT = 2;

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}
const prefetched = (outcome: string) => counter('keyfarm_key_prefetch_total', { outcome });
const keyMisses = () => counter('keyfarm_cache_misses_total', { cache: 'key' });
const keyHits = () => counter('keyfarm_cache_hits_total', { cache: 'key' });
const cachedKeys = () => counter('keyfarm_cache_size', { cache: 'key' });

const signProbe = (content: string) => [{ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) }];

describe('key prefetch', () => {
  let farm: TestFarm;
  let names: ShardNames;
  let listener: RedisClient;
  /** Every message on the hint channel since the farm started. */
  const hints: string[] = [];

  before(async () => {
    farm = await startTestFarm(NAME, { KEY_PREFETCH_MAX_INFLIGHT: String(MAX_IN_FLIGHT) });
    names = new ShardNames(farm.config.KEY_PREFIX);
    listener = createRedis(farm.rt.redisUrl, { enableAutoPipelining: false });
    listener.on('message', (_channel: string, message: string) => hints.push(message));
    await listener.subscribe(names.keyPrefetchChannel());
    // A hint for a shard no worker owns yet is dropped: the cases below start once the worker owns all.
    const owned = () => registry.getSingleMetric('keyfarm_shards_owned')!.get();
    await waitFor(async () => (await owned()).values[0]?.value === farm.config.SHARD_COUNT, 10_000, 'the shards');
  });

  after(async () => {
    if (listener) await closeRedis(listener);
    await farm?.stop();
  });

  async function keyIdOf(pubkey: string): Promise<string> {
    const { rows } = await farm.rt.db.query<{ key_id: string }>('SELECT key_id FROM users WHERE pubkey = $1', [pubkey]);
    return rows[0]!.key_id;
  }

  /** Empties every worker cache (as a key change would for one key) and waits until it is empty. */
  async function evictAll(): Promise<void> {
    await publishEviction(listenerPublisher(), names.evictChannel(), { type: 'all' });
    await waitFor(async () => (await cachedKeys()) === 0, 10_000, 'the key cache to empty');
  }
  let publisher: RedisClient | undefined;
  function listenerPublisher(): RedisClient {
    publisher ??= createRedis(farm.rt.redisUrl);
    return publisher;
  }
  after(async () => {
    if (publisher) await closeRedis(publisher);
  });

  it('issuing a token loads the key before the first request, which is a cache hit', async () => {
    const user = await registerUser(farm.url);
    await evictAll();
    const loadedBefore = await prefetched('loaded');
    const auth = await authorizeApp(farm.url, user.session);
    await waitFor(async () => (await prefetched('loaded')) > loadedBefore, 10_000, 'the key to be prefetched');
    const [misses, hits] = [await keyMisses(), await keyHits()];
    const res = await rpc(farm.url, auth.access_token, 'sign_event', signProbe('first request'));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.result.pubkey, user.pubkey);
    assert.equal((await keyMisses()) - misses, 0, 'the first sign_event found the key cached');
    assert.equal((await keyHits()) - hits, 1);
  });

  it('an api process that first sees a token hints its key (a worker restarted, its cache empty)', async () => {
    const user = await registerUser(farm.url);
    const issued = await prefetched('loaded');
    const auth = await authorizeApp(farm.url, user.session);
    await waitFor(async () => (await prefetched('loaded')) > issued, 10_000, 'the key to be prefetched');
    // Empties the workers' key cache and this api's token cache, as restarting both would.
    await evictAll();
    const loadedBefore = await prefetched('loaded');
    const ping = await rpc(farm.url, auth.access_token, 'ping');
    assert.equal(ping.status, 200);
    await waitFor(async () => (await prefetched('loaded')) > loadedBefore, 10_000, 'the key to be prefetched');
    const misses = await keyMisses();
    const res = await rpc(farm.url, auth.access_token, 'sign_event', signProbe('after ping'));
    assert.equal(res.status, 200);
    assert.equal((await keyMisses()) - misses, 0);
  });

  it("creating a bunker loads its key and the user's before its client connects", async () => {
    const user = await registerUser(farm.url);
    await evictAll();
    const from = hints.length;
    const loaded = await prefetched('loaded');
    const res = await call(farm.url, 'POST', '/api/user/bunker/create', { app_name: 'prefetch test' }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    recordSecret(new URL(res.body.bunker_url).searchParams.get('secret')!);
    await waitFor(async () => (await prefetched('loaded')) >= loaded + 2, 10_000, 'both keys to be prefetched');
    const { rows } = await farm.rt.db.query<{ bunker_key_id: string }>(
      'SELECT a.bunker_key_id FROM authorizations a JOIN users u ON u.id = a.user_id WHERE u.pubkey = $1',
      [user.pubkey],
    );
    const shard = shardOf(user.pubkey, farm.config.SHARD_COUNT);
    assert.deepEqual(
      new Set(hints.slice(from)),
      new Set([
        encodeKeyPrefetchHint({ keyId: rows[0]!.bunker_key_id, shard }),
        encodeKeyPrefetchHint({ keyId: await keyIdOf(user.pubkey), shard }),
      ]),
    );
    assert.equal(await cachedKeys(), 2);
  });

  it('a hint carries the key id and shard only: no key material, token or password, on Redis or in logs', async () => {
    const sk = generateSecretKey();
    const nsec = recordSecret(nip19.nsecEncode(sk));
    const hex = recordSecret(Buffer.from(sk).toString('hex'));
    const user = await registerUser(farm.url, { nsec });
    assert.equal(user.pubkey, getPublicKey(sk));
    const from = hints.length;
    const auth = await authorizeApp(farm.url, user.session);
    const keyId = await keyIdOf(user.pubkey);
    await waitFor(() => hints.length > from, 10_000, 'a hint');
    await rpc(farm.url, auth.access_token, 'sign_event', signProbe('hinted'));
    const sent = hints.slice(from);
    const expected = encodeKeyPrefetchHint({ keyId, shard: shardOf(user.pubkey, farm.config.SHARD_COUNT) });
    assert.deepEqual(new Set(sent), new Set([expected]));
    const secrets = [nsec, hex, auth.access_token, auth.refresh_token, user.session, user.password];
    for (const message of sent) for (const s of secrets) assert.ok(!message.includes(s));
    const log = readFileSync(testLogFile(NAME), 'utf8');
    for (const s of secrets) assert.ok(!log.includes(s), 'a secret reached the farm log');
  });

  it("a user's requests warm only the key they sign with, never another user's", async () => {
    const victim = await registerUser(farm.url);
    const issued = await prefetched('loaded');
    await authorizeApp(farm.url, victim.session);
    await waitFor(async () => (await prefetched('loaded')) > issued, 10_000, "the victim's own prefetch");
    const victimKey = await keyIdOf(victim.pubkey);
    const attacker = await registerUser(farm.url);
    await evictAll();
    const from = hints.length;
    const auth = await authorizeApp(farm.url, attacker.session);
    const attackerKey = await keyIdOf(attacker.pubkey);
    // Everything a user controls in a request: the token, the method, its params (the victim's pubkey as
    // peer or as the event's author), headers. Unknown and malformed tokens are looked up as well.
    await rpc(farm.url, 'kf_access_not-a-real-token-0000000000000000000000', 'ping');
    await rpc(farm.url, `${auth.access_token}x`, 'sign_event', signProbe('x'));
    await rpc(farm.url, auth.access_token, 'sign_event', [{ ...signProbe('as victim')[0], pubkey: victim.pubkey }]);
    await rpc(farm.url, auth.access_token, 'nip44_encrypt', [victim.pubkey, 'hello']);
    await rpc(farm.url, auth.access_token, 'get_public_key', [], { 'x-key-id': victimKey });
    await waitFor(async () => (await cachedKeys()) >= 1, 10_000, "the attacker's key to be cached");
    const named = new Set(hints.slice(from).map((m) => (JSON.parse(m) as { keyId: string }).keyId));
    assert.deepEqual(named, new Set([attackerKey]), 'hints named only the key the token signs with');
    assert.equal(await cachedKeys(), 1, "only the attacker's own key is cached; the victim's is not");
  });

  it('a flood of hints on Redis runs at most KEY_PREFETCH_MAX_INFLIGHT loads at once and drops the rest', async () => {
    await evictAll();
    const outcomes = ['busy', 'not_found', 'loaded', 'not_owned', 'invalid'] as const;
    const before: Record<string, number> = Object.fromEntries(
      await Promise.all(outcomes.map(async (o) => [o, await prefetched(o)])),
    );
    const flood = 300;
    const pipeline = listenerPublisher().pipeline();
    for (let i = 0; i < flood; i++)
      pipeline.publish(
        names.keyPrefetchChannel(),
        encodeKeyPrefetchHint({ keyId: randomUUID(), shard: i % farm.config.SHARD_COUNT }),
      );
    pipeline.publish(names.keyPrefetchChannel(), '{"keyId":"x","shard":0}');
    await pipeline.exec();
    const counted = async (): Promise<Record<string, number>> =>
      Object.fromEntries(await Promise.all(outcomes.map(async (o) => [o, (await prefetched(o)) - before[o]!])));
    await waitFor(
      async () => Object.values(await counted()).reduce((t, n) => t + n, 0) === flood + 1,
      5000,
      'every hint to be handled',
    );
    const c = await counted();
    assert.equal(c.invalid, 1);
    assert.equal(c.loaded, 0);
    assert.ok(c.busy! > flood / 2, `most hints were dropped for want of a slot: ${JSON.stringify(c)}`);
    assert.ok(c.not_found! >= MAX_IN_FLIGHT, JSON.stringify(c));
    assert.equal(await cachedKeys(), 0, 'nothing entered the cache');
    // The farm still answers.
    const user = await registerUser(farm.url);
    const auth = await authorizeApp(farm.url, user.session);
    const res = await rpc(farm.url, auth.access_token, 'sign_event', signProbe('after the flood'));
    assert.equal(res.status, 200);
  });
});
