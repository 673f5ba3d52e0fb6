// A bunker URL is usable the moment the api hands it out. NIP-46 requests are ephemeral: a relay passes
// them only to the subscriptions active at that moment, so a client that connects right after getting its
// URL, before relay-ingest listens for the new bunker, would never be answered. Here the test relay makes
// relay-ingest's subscriptions active only SLOW_REQ_MS after their REQ, so the race is lost every time
// unless the api waits for relay-ingest's listening mark; clients connect at once, with no help from the
// test (no waitForBunkerListener). And the wait is bounded: a relay-ingest that cannot listen, or none at
// all, does not hold the api up past BUNKER_LISTEN_WAIT_MS.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools';
import { BunkerSigner, createNostrConnectURI, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { listenerPresenceKey } from '../../shared/nip46/listening.js';
import { metrics } from '../../shared/metrics.js';
import { createRedis, type RedisClient } from '../../shared/redis.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { authorizeApp, call, registerUser, type TestUser } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor, within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

/** How long the test relay takes to make one of relay-ingest's subscriptions active. */
const SLOW_REQ_MS = 250;
const isIngestSubscription = (id: string) => id.startsWith('kf46-');

async function listenWaits(outcome: string): Promise<number> {
  const { values } = await metrics.bunkerListenWait.get();
  return values.filter((v) => v.labels.outcome === outcome).reduce((s, v) => s + v.value, 0);
}

function note(content: string) {
  return { kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) };
}

async function createBunker(base: string, user: TestUser, appName: string) {
  const res = await call(base, 'POST', '/api/user/bunker/create', { app_name: appName }, user.session);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const bp = (await parseBunkerInput(res.body.bunker_url)) as BunkerPointer;
  recordSecret(bp.secret!);
  return bp;
}

describe('a new bunker answers its first request, sent the moment its URL is handed out', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  let user: TestUser;
  const clients = new BunkerClients();
  const pools: SimplePool[] = [];

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('bunker-ready', { RPC_TIMEOUT_MS: '3000' }));
    base = farm.url;
    user = await registerUser(base);
    relay.delayReqs(SLOW_REQ_MS, isIngestSubscription);
  });

  after(async () => {
    await clients.close();
    for (const p of pools) p.destroy();
    await farm?.stop();
    await relay?.stop();
  });

  it('POST /api/user/bunker/create: 20 bunkers in a row each answer connect and sign_event at once', async () => {
    const listenedBefore = await listenWaits('listening');
    for (let i = 0; i < 20; i++) {
      const bp = await createBunker(base, user, `at-once-${i}`);
      const signer = clients.signer(bp);
      await within(5000, signer.connect(), `connect of bunker ${i}`);
      const ev = await within(5000, signer.signEvent(note(`at once ${i}`)), `sign_event of bunker ${i}`);
      assert.ok(verifyEvent(ev));
      assert.equal(ev.pubkey, user.pubkey);
    }
    assert.equal((await listenWaits('listening')) - listenedBefore, 20, 'each URL waited for its listener');
  });

  it('OAuth token exchange: the bunker_url of 10 apps in a row each answer connect and sign_event at once', async () => {
    for (let i = 0; i < 10; i++) {
      const tokens = await authorizeApp(base, user.session, 'full', `ready-app-${i}`);
      const bp = (await parseBunkerInput(tokens.bunker_url)) as BunkerPointer;
      recordSecret(bp.secret!);
      const signer = clients.signer(bp);
      await within(5000, signer.connect(), `connect of app ${i}`);
      const ev = await within(5000, signer.signEvent(note(`oauth ${i}`)), `sign_event of app ${i}`);
      assert.ok(verifyEvent(ev));
    }
  });

  it('team bunkers: 5 authorizations of a team key in a row each answer connect and sign_event at once', async () => {
    const team = await call(base, 'POST', '/api/teams', { name: 'ready team' }, user.session);
    assert.equal(team.status, 201, JSON.stringify(team.body));
    const key = await call(base, 'POST', `/api/teams/${team.body.team.id}/keys`, { name: 'shared' }, user.session);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    for (let i = 0; i < 5; i++) {
      const res = await call(
        base,
        'POST',
        `/api/teams/${team.body.team.id}/keys/${key.body.pubkey}/authorizations`,
        { app_name: `team app ${i}` },
        user.session,
      );
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const bp = (await parseBunkerInput(res.body.bunker_url)) as BunkerPointer;
      recordSecret(bp.secret!);
      const signer = clients.signer(bp);
      await within(5000, signer.connect(), `connect of team bunker ${i}`);
      const ev = await within(5000, signer.signEvent(note(`team ${i}`)), `sign_event of team bunker ${i}`);
      assert.equal(ev.pubkey, key.body.pubkey);
    }
  });

  it("nostrconnect://: the app's first request after relay-ingest's connect response is answered, 5 in a row", async () => {
    for (let i = 0; i < 5; i++) {
      const sk = generateSecretKey();
      recordSecret(bytesToHex(sk));
      const secret = recordSecret(`nc-${bytesToHex(generateSecretKey()).slice(0, 24)}`);
      const uri = createNostrConnectURI({ clientPubkey: getPublicKey(sk), relays: [relay.url], secret, name: 'Ready' });
      const pool = new SimplePool();
      pools.push(pool);
      // No switch_relays first (the client would give it a second): its first request is the sign_event.
      const pending = BunkerSigner.fromURI(sk, uri, { pool, skipSwitchRelays: true }, 10_000);
      await waitFor(
        () => relay.stats.subscribed.some(([, fs]) => fs.some((f) => f['#p']?.includes(getPublicKey(sk)))),
        5000,
        'the app listening',
      );
      const res = await call(base, 'POST', '/api/user/nostrconnect', { uri, policy_slug: 'full' }, user.session);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const signer = await within(10_000, pending, `fromURI ${i}`);
      // Sent as soon as the connect response arrives: relay-ingest must already listen on the app's relay.
      const ev = await within(5000, signer.signEvent(note(`nostrconnect ${i}`)), `sign_event of app ${i}`);
      assert.ok(verifyEvent(ev));
      await signer.close();
    }
  });
});

describe('the wait for a listener is bounded', () => {
  const BOUND_MS = 1500;
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  let user: TestUser;
  let redis: RedisClient;

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('bunker-ready-bound', { BUNKER_LISTEN_WAIT_MS: String(BOUND_MS) }));
    base = farm.url;
    user = await registerUser(base);
    redis = createRedis(farm.rt.redisUrl);
  });

  after(async () => {
    redis?.disconnect();
    await farm?.stop();
    await relay?.stop();
  });

  const presence = () => redis.exists(listenerPresenceKey(farm.config.KEY_PREFIX));

  async function timedCreate(name: string): Promise<number> {
    const started = Date.now();
    await createBunker(base, user, name);
    return Date.now() - started;
  }

  it('answers after BUNKER_LISTEN_WAIT_MS when relay-ingest is connected but never gets to listen', async () => {
    await waitFor(async () => (await presence()) === 1, 5000, 'relay-ingest present');
    relay.delayReqs(60_000, isIngestSubscription);
    const timeoutsBefore = await listenWaits('timeout');
    const ms = await timedCreate('never-listened');
    assert.ok(ms >= BOUND_MS - 50, `waited for the listener (${ms} ms)`);
    assert.ok(ms < BOUND_MS + 1500, `answered within the bound (${ms} ms)`);
    assert.equal((await listenWaits('timeout')) - timeoutsBefore, 1, 'counted as a timeout');
  });

  it('does not wait once its relay is unreachable, nor with relay-ingest stopped', async () => {
    await relay.stop();
    // Until relay-ingest's presence lapses the api may still wait, never past the bound.
    assert.ok((await timedCreate('relay-down')) < BOUND_MS + 1500, 'within the bound');
    await waitFor(async () => (await presence()) === 0, 6000, 'the presence lapsing without a relay');
    const noListenerBefore = await listenWaits('no_listener');
    assert.ok((await timedCreate('relay-down-later')) < 1000, 'no wait without a connected relay-ingest');
    assert.equal((await listenWaits('no_listener')) - noListenerBefore, 1);

    await relay.start();
    await waitFor(async () => (await presence()) === 1, 8000, 'relay-ingest back on its relay');
    await farm.relayIngest!.stop();
    assert.ok((await timedCreate('ingest-stopped')) < BOUND_MS + 1500, 'within the bound');
    await waitFor(async () => (await presence()) === 0, 6000, 'the presence lapsing with relay-ingest stopped');
    assert.ok((await timedCreate('ingest-stopped-later')) < 1000, 'no wait without relay-ingest');
  });
});
