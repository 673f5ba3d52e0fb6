// Attacks on the NIP-46 door through a real relay (@nostr-relay/core, which does not store kind 24133) and
// a real farm: a stale request, a replayed one (to the same relay-ingest and to one started after it), an
// expired authorization; and the bunker list kept current when an announcement is lost: by the periodic
// reload, and by the reload after relay-ingest's Redis link comes back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApi, type RunningApi } from '../../api/index.js';
import { openKeyManager, VERSION } from '../../bin/runtime.js';
import { startRelayIngest, type RelayIngest, type RelayIngestTuning } from '../../relay-ingest/index.js';
import { ingestMetrics } from '../../relay-ingest/metrics.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { call, registerUser } from '../support/client.js';
import { redisUrl } from '../support/env.js';
import { startRoles } from '../../bin/roles.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { testLogger } from '../support/logs.js';
import { Nip46Probe, type Nip46Answer } from '../support/nip46-probe.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { startRedisProxy, type CuttableProxy } from '../support/tcp-proxy.js';
import { waitFor } from './farm-fixtures.js';
import { loadPayloadSealer } from '../../shared/farm/payload-key.js';
import { FAST_RELAY } from '../support/bunker.js';

/** Requests older than this are stale for the relay-ingests of this file (the default is 900). */
const MAX_AGE_S = 60;
/** Long enough that no periodic reload happens during a test that must not rely on one. */
const NO_PERIODIC_RELOAD_MS = 10 * 60_000;

const nowS = () => Math.floor(Date.now() / 1000);

async function dropped(reason: string): Promise<number> {
  const m = await ingestMetrics.eventsDropped.get();
  return m.values.filter((v) => v.labels.reason === reason).reduce((s, v) => s + v.value, 0);
}

describe('security of the NIP-46 door: attacks through a real relay', () => {
  let relay: TestRelay;
  let farm: TestFarm;
  let base: string;
  let user: Awaited<ReturnType<typeof registerUser>>;
  const ingests = new Set<RelayIngest>();

  before(async () => {
    relay = await startTestRelay();
    farm = await startTestFarm(
      'security-nip46',
      { BUNKER_RELAYS: relay.url, RPC_TIMEOUT_MS: '3000' },
      { api: true, workers: true },
    );
    base = farm.url;
    user = await registerUser(base);
  });

  after(async () => {
    for (const i of ingests) await i.stop();
    await farm?.stop();
    await relay?.stop();
  });

  async function startIngest(
    name: string,
    tuning: Partial<RelayIngestTuning>,
    viaRedis = farm.rt.redisUrl,
  ): Promise<RelayIngest> {
    const ingest = await startRelayIngest({
      config: farm.config,
      logger: testLogger(name),
      db: farm.rt.db,
      redisUrl: viaRedis,
      tuning: {
        relay: FAST_RELAY,
        maxRequestAgeSeconds: MAX_AGE_S,
        reloadIntervalMs: NO_PERIODIC_RELOAD_MS,
        ...tuning,
      },
    });
    ingests.add(ingest);
    return ingest;
  }

  async function stopIngest(ingest: RelayIngest): Promise<void> {
    await ingest.stop();
    ingests.delete(ingest);
  }

  /** How many REQs the relay has had for this bunker (each relay-ingest that listens for it sends one). */
  const reqsFor = (bunkerPubkey: string) =>
    relay.stats.subscribed.filter(([, fs]) => fs.some((f) => f['#p']?.includes(bunkerPubkey))).length;

  async function newBunker(api = base): Promise<Nip46Probe> {
    const res = await call(api, 'POST', '/api/user/bunker/create', { app_name: 'security test' }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return new Nip46Probe(res.body.bunker_url);
  }

  /** Publishes a request and waits for the bunker's answer to it. */
  async function ask(probe: Nip46Probe, method: string, params: string[]): Promise<Nip46Answer> {
    const { id, event } = probe.request(method, params);
    await probe.publish(event, relay.url);
    await waitFor(`an answer to ${method}`, () => probe.answersOn(relay, id).length > 0, 8000);
    return probe.answersOn(relay, id)[0]!;
  }

  async function connected(ingestBefore: number, probe: Nip46Probe): Promise<void> {
    await waitFor('relay-ingest listening for the bunker', () => reqsFor(probe.bunkerPubkey) > ingestBefore, 5000);
    assert.equal((await ask(probe, 'connect', [probe.bunkerPubkey, probe.secret])).result, 'ack');
  }

  it('does not answer a stale request, however valid', async () => {
    const ingest = await startIngest('security-nip46-stale', {});
    try {
      const probe = await newBunker();
      await connected(0, probe);
      const staleBefore = await dropped('stale');
      // Signed by the bound client, addressed right, but older than the age limit: a captured request
      // replayed late, or one its client gave up on long ago.
      const stale = probe.request('ping', [], nowS() - MAX_AGE_S - 30);
      await probe.publish(stale.event, relay.url);
      await waitFor(
        'the stale request counted as dropped',
        async () => (await dropped('stale')) === staleBefore + 1,
        5000,
      );
      // A fresh request after it is answered, so the farm has been through the stale one: it got nothing.
      assert.equal((await ask(probe, 'ping', [])).result, 'pong');
      assert.deepEqual(probe.answersOn(relay, stale.id), []);
    } finally {
      await stopIngest(ingest);
    }
  });

  it('answers a replayed request once: replayed to the same relay-ingest and to one started after it', async () => {
    let ingest = await startIngest('security-nip46-replay-1', {});
    const probe = await newBunker();
    try {
      await connected(0, probe);
      const original = probe.request('sign_event', [
        JSON.stringify({ kind: 1, content: 'once only', tags: [], created_at: nowS() }),
      ]);
      await probe.publish(original.event, relay.url);
      await waitFor('the original answered', () => probe.answersOn(relay, original.id).length > 0, 8000);

      // The test relay answers a second publish of an event id from its cache without passing it on; other
      // relays (or another relay the attacker picks) pass it on again, which inject() does here.
      let duplicatesBefore = await dropped('duplicate');
      await relay.inject(original.event);
      await waitFor(
        'the replay counted as a duplicate',
        async () => (await dropped('duplicate')) === duplicatesBefore + 1,
        5000,
      );
      assert.equal((await ask(probe, 'ping', [])).result, 'pong');
      assert.equal(probe.answersOn(relay, original.id).length, 1, 'replayed to the same relay-ingest: one answer');

      // A relay-ingest that never saw the request (a restart, another replica) must refuse it too.
      await stopIngest(ingest);
      const reqsBefore = reqsFor(probe.bunkerPubkey);
      ingest = await startIngest('security-nip46-replay-2', {});
      await waitFor('the new relay-ingest listening', () => reqsFor(probe.bunkerPubkey) > reqsBefore, 5000);
      duplicatesBefore = await dropped('duplicate');
      await relay.inject(original.event);
      await waitFor(
        'the replay counted as a duplicate',
        async () => (await dropped('duplicate')) === duplicatesBefore + 1,
        5000,
      );
      assert.equal((await ask(probe, 'ping', [])).result, 'pong');
      assert.equal(probe.answersOn(relay, original.id).length, 1, 'replayed after a restart: still one answer');
    } finally {
      await stopIngest(ingest);
    }
  });

  it('refuses every request under an authorization whose expires_at has passed, connect included', async () => {
    const ingest = await startIngest('security-nip46-expiry', {});
    try {
      const probe = await newBunker();
      await waitFor('relay-ingest listening for the bunker', () => reqsFor(probe.bunkerPubkey) > 0, 5000);
      await farm.rt.db.query(
        `UPDATE authorizations SET expires_at = now() - interval '1 second' WHERE bunker_pubkey = $1`,
        [probe.bunkerPubkey],
      );
      const connect = await ask(probe, 'connect', [probe.bunkerPubkey, probe.secret]);
      assert.equal(connect.error, 'authorization expired');
      assert.equal(connect.result, '');
      const sign = await ask(probe, 'sign_event', [
        JSON.stringify({ kind: 1, content: 'late', tags: [], created_at: nowS() }),
      ]);
      assert.equal(sign.error, 'authorization expired');
      const { rows } = await farm.rt.db.query('SELECT client_pubkey FROM authorizations WHERE bunker_pubkey = $1', [
        probe.bunkerPubkey,
      ]);
      assert.equal(rows[0].client_pubkey, null, 'no client was bound');
    } finally {
      await stopIngest(ingest);
    }
  });

  describe('the bunker list when an announcement is lost', () => {
    let lostApi: RunningApi;
    let keyManager: KeyManager;

    before(async () => {
      // An api whose announcements go where no relay-ingest listens (another KEY_PREFIX), over the same
      // database: the bunkers it creates exist, but their announcement is lost.
      keyManager = await openKeyManager(farm.rt);
      lostApi = await startApi({
        config: { ...farm.config, KEY_PREFIX: `${farm.config.KEY_PREFIX}_lost` },
        logger: testLogger('security-nip46-lost-api'),
        db: farm.rt.db,
        redisUrl: farm.rt.redisUrl,
        keyManager,
        payloadSealer: await loadPayloadSealer(farm.rt.db, keyManager),
        version: VERSION,
      });
    });

    after(async () => {
      await lostApi?.close();
      await keyManager?.close();
    });

    it('the periodic reload picks up a bunker whose announcement was lost', async () => {
      const reloadIntervalMs = 500;
      const ingest = await startIngest('security-nip46-periodic', { reloadIntervalMs });
      try {
        const probe = await newBunker(lostApi.url);
        // Not from an announcement: only a reload can find it, within a few intervals.
        await waitFor(
          'relay-ingest listening for the bunker',
          () => reqsFor(probe.bunkerPubkey) > 0,
          reloadIntervalMs * 10,
        );
        assert.ok(ingest.directory.get(probe.bunkerPubkey), 'in the bunker list');
        assert.equal((await ask(probe, 'connect', [probe.bunkerPubkey, probe.secret])).result, 'ack');
        assert.equal((await ask(probe, 'ping', [])).result, 'pong');
      } finally {
        await stopIngest(ingest);
      }
    });

    it('reloads the bunker list when its Redis link comes back', async () => {
      const proxy: CuttableProxy = await startRedisProxy(redisUrl());
      const ingest = await startIngest('security-nip46-reconnect', {}, proxy.urlFor(redisUrl()));
      // The proxy stands in front of the single Redis: on a cluster (the suite's cluster mode) the farm's
      // workers are elsewhere, so workers of the same farm serve the jobs this relay-ingest queues there.
      const ownWorkers =
        typeof farm.rt.redisUrl === 'string'
          ? undefined
          : await startRoles({ ...farm.rt, redisUrl: redisUrl() }, { workers: true });
      try {
        proxy.cut();
        await waitFor(
          'relay-ingest to see Redis gone',
          async () => (await ingest.readiness()).some(([c, why]) => c === 'redis' && why !== null),
          5000,
        );
        // Announced on the farm's own channel, while this relay-ingest cannot hear it.
        const probe = await newBunker();
        assert.equal(ingest.directory.get(probe.bunkerPubkey), undefined, 'the announcement did not reach it');
        proxy.restore();
        // ioredis retries every <= 2 s; no periodic reload can happen in this window.
        await waitFor(
          'relay-ingest listening for the bunker after the link came back',
          () => reqsFor(probe.bunkerPubkey) > 0,
          10_000,
        );
        assert.equal((await ask(probe, 'connect', [probe.bunkerPubkey, probe.secret])).result, 'ack');
        assert.equal((await ask(probe, 'ping', [])).result, 'pong');
      } finally {
        proxy.restore();
        await stopIngest(ingest);
        await ownWorkers?.stop();
        await proxy.stop();
      }
    });
  });
});
