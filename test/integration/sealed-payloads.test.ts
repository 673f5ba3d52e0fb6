// No message content in Redis: after HTTP nip44/nip04 encrypt and decrypt and sign_event calls whose
// plaintexts, decrypted texts and events carry a unique marker, every key under the farm's prefix (the
// shards' job streams, finished job records with their replies, everything), every message on its pub/sub
// channels and Bull
// Board's view of the jobs are searched for the marker in clear, hex and base64, and it is not there.
// The same holds for the NIP-46 door. The farm payload key that seals the RPC content: made once when
// processes start together, and re-wrapped by KEK rotation.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSecretKey, getPublicKey, nip04, nip44, verifyEvent } from 'nostr-tools';
import { BunkerSigner, parseBunkerInput } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { findPayloadKey } from '../../database/queries/payload-keys.js';
import { openSecret } from '../../shared/custody/envelope.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { LocalKeyManager } from '../../shared/custody/local-key-manager.js';
import { installMasterKey } from '../../shared/custody/local-key-manager-install.js';
import { rotateKek } from '../../shared/custody/rotate-kek.js';
import { FARM_PAYLOAD_KEY_ID, loadPayloadSealer, payloadKeyAad } from '../../shared/farm/payload-key.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { createTestDatabase, migrateDatabase, testDataDir, testPool, suiteRedis } from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { isCluster, untilReady } from '../../shared/redis.js';
import { dumpRedis, markersIn, type DumpedKey } from '../support/redis-dump.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

const MARKER = `kf-private-${randomBytes(8).toString('hex')}`;

const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;

/** A peer key pair for the encryption calls, its secret recorded for the log scan. */
function peerKey() {
  const sk = generateSecretKey();
  recordSecret(Buffer.from(sk).toString('hex'));
  return { sk, pk: getPublicKey(sk) };
}

interface Heard {
  channel: string;
  message: string;
}

/**
 * Every message published on any channel under `prefix` from now on. On a cluster, the direct (reply)
 * channels take sharded pub/sub, which has no pattern subscription: the channels the farm's processes
 * listen on (each started before this) are read from every master and subscribed to by name.
 */
async function listenAll(prefix: string): Promise<{ heard: Heard[]; close(): void }> {
  const heard: Heard[] = [];
  const listener = suiteRedis();
  listener.on('pmessage', (_pattern: string, channel: string, message: string) => heard.push({ channel, message }));
  await listener.psubscribe(`${prefix}:*`);
  if (isCluster(listener)) {
    listener.on('smessage', (channel: string, message: string) => heard.push({ channel, message }));
    await untilReady(listener);
    const channels = new Set<string>();
    for (const master of listener.nodes('master'))
      for (const c of (await master.call('PUBSUB', 'SHARDCHANNELS', `${prefix}:*`)) as string[]) channels.add(c);
    assert.ok(channels.size > 0, 'the farm listens on sharded reply channels');
    for (const channel of channels) await listener.ssubscribe(channel);
  }
  return { heard, close: () => listener.disconnect() };
}

/** Where the marker shows, in any form, in the dumped keys and the heard messages. */
function leaksOf(dump: DumpedKey[], heard: Heard[]): string[] {
  return [
    ...dump.flatMap((k) => markersIn(k.text, MARKER).map((form) => `${k.key} (${k.type}) holds ${form}`)),
    ...heard.flatMap((m) => markersIn(m.message, MARKER).map((form) => `${m.channel} carried ${form}`)),
  ];
}

describe('RPC content never sits readable in Redis', () => {
  let farm: TestFarm;
  let listener: Awaited<ReturnType<typeof listenAll>>;
  let heard: Heard[] = [];
  let dump: DumpedKey[] = [];

  before(async () => {
    farm = await startTestFarm('sealed-payloads');
    listener = await listenAll(farm.config.KEY_PREFIX);
    heard = listener.heard;

    const user = await registerUser(farm.url);
    const { access_token: token } = await authorizeApp(farm.url, user.session, 'full');
    const { sk: peerSk, pk: peerPk } = peerKey();
    const conv = nip44.v2.utils.getConversationKey(peerSk, user.pubkey);
    const ok = async (method: string, params: unknown[]) => {
      const res = await rpc(farm.url, token, method, params);
      assert.equal(res.status, 200, `${method}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.result;
    };

    // Each call carries the marker where its private content is: the plaintext going in, the text a
    // decrypt gives back, an event's content and tags going in and coming back signed.
    const enc44 = await ok('nip44_encrypt', [peerPk, `note 44 ${MARKER}`]);
    assert.equal(nip44.v2.decrypt(enc44, conv), `note 44 ${MARKER}`);
    assert.equal(
      await ok('nip44_decrypt', [peerPk, nip44.v2.encrypt(`reply 44 ${MARKER}`, conv)]),
      `reply 44 ${MARKER}`,
    );
    const enc04 = await ok('nip04_encrypt', [peerPk, `note 04 ${MARKER}`]);
    assert.equal(await nip04.decrypt(peerSk, user.pubkey, enc04), `note 04 ${MARKER}`);
    assert.equal(
      await ok('nip04_decrypt', [peerPk, await nip04.encrypt(peerSk, user.pubkey, `reply 04 ${MARKER}`)]),
      `reply 04 ${MARKER}`,
    );
    const draft = {
      kind: 1,
      content: `draft ${MARKER}`,
      tags: [['subject', MARKER]],
      created_at: Math.floor(Date.now() / 1000),
    };
    const signed = await ok('sign_event', [draft]);
    assert.ok(verifyEvent(signed) && signed.content === draft.content, 'the farm signed the draft as given');

    const redis = suiteRedis();
    dump = await dumpRedis(redis, farm.config.KEY_PREFIX).finally(() => redis.disconnect());
  });
  after(async () => {
    listener?.close();
    await farm?.stop();
  });

  /** The finished records (P:job:<id>) of the RPC jobs the calls made (kept a while after they finish). */
  const rpcJobs = () =>
    dump.filter((k) => k.type === 'string' && k.key.includes(':job:') && k.text.includes('\\"type\\":\\"rpc\\"'));

  it('holds no marker in any key of any type, the jobs and their results included', () => {
    const jobs = rpcJobs();
    assert.ok(
      jobs.length >= 1,
      `the dump holds the RPC jobs (${dump.length} keys: ${dump.map((k) => k.key).join(', ')})`,
    );
    assert.ok(
      jobs.every((j) => j.text.includes('\\"items\\"') && j.text.includes('\\"sealedResults\\"')),
      'and their items and sealed replies',
    );
    assert.ok(
      jobs.every((j) => !j.text.includes('\\"calls\\"')),
      'a finished record keeps no sealed calls (nothing reads them once the job ran)',
    );
    assert.ok(
      dump.some((k) => k.type === 'stream' && k.key.endsWith(':jobs')),
      "and the shards' job streams",
    );
    assert.deepEqual(leaksOf(dump, []), []);
  });

  it('holds not the payload key itself, in any key or log', async () => {
    const km = await LocalKeyManager.open(farm.config.MASTER_KEY_PATH, { watchIntervalMs: 0 });
    try {
      const row = (await findPayloadKey(farm.rt.db, FARM_PAYLOAD_KEY_ID))!;
      const key = Buffer.from(await openSecret(km, row, payloadKeyAad(FARM_PAYLOAD_KEY_ID)));
      // Recorded, the suite's log scan (test/zz-secret-scan.test.ts) looks for it in every log too.
      const forms = [key.toString('hex'), key.toString('base64'), key.toString('base64url')].map(recordSecret);
      const text = dump.map((k) => k.text).join('\n') + heard.map((m) => m.message).join('\n');
      assert.deepEqual(
        forms.filter((f) => text.includes(f)),
        [],
      );
      key.fill(0);
    } finally {
      await km.close();
    }
  });

  it('publishes no marker on the reply channels', () => {
    // <prefix>:reply:<process> on a single Redis, <prefix>:{<shard tag>}:reply:<process> on a cluster.
    const replies = heard.filter(
      (m) => m.channel.startsWith(`${farm.config.KEY_PREFIX}:`) && m.channel.includes(':reply:'),
    );
    assert.ok(replies.length >= 1, `the listener heard the replies (${heard.length} messages)`);
    assert.deepEqual(leaksOf([], heard), []);
  });

  it("shows the jobs' calls and results in Bull Board as [sealed]", async () => {
    // The finished RPC jobs' records: <prefix>:{<shard tag>}:job:<job id>, JSON with the job's data and
    // reply. The tag is shard-N, or shard-N.k on a cluster; Bull Board names the queue shard-N.
    const finished = dump.flatMap((k) => {
      const match = /:\{shard-(\d+)(?:\.\d+)?\}:job:([^:]+)$/.exec(k.key);
      const text = k.type === 'string' ? (JSON.parse(k.text) as string | null) : null;
      if (!match || text === null) return [];
      const record = JSON.parse(text) as { type?: string; data?: unknown; reply?: unknown };
      assert.ok(record.data !== undefined && record.reply !== undefined, `${k.key} holds the job's data and reply`);
      return record.type === 'rpc' ? [{ queue: `shard-${match[1]}`, jobId: match[2]! }] : [];
    });
    assert.ok(finished.length >= 1, `the dump holds finished RPC jobs (${dump.map((k) => k.key).join(', ')})`);
    for (const { queue, jobId } of finished) {
      const res = await fetch(`${farm.url}/admin/queues/api/queues/${queue}/${encodeURIComponent(jobId)}`, {
        headers: { authorization: basic(farm.env.ADMIN_PASSWORD!) },
      });
      assert.equal(res.status, 200, `${queue}/${jobId}`);
      const body = await res.text();
      assert.deepEqual(markersIn(body, MARKER), [], `${queue}/${jobId} shows no marker`);
      const { job, status } = JSON.parse(body) as {
        job: { data: { items: { method: string }[]; calls: unknown }; returnValue: { sealedResults: unknown } };
        status: string;
      };
      assert.equal(status, 'completed', `${queue}/${jobId}`);
      assert.ok(job.data.items.length >= 1);
      for (const item of job.data.items) {
        assert.ok(
          ['nip44_encrypt', 'nip44_decrypt', 'nip04_encrypt', 'nip04_decrypt', 'sign_event'].includes(item.method),
          'the methods stay readable',
        );
      }
      assert.equal(job.data.calls, '[sealed]');
      assert.equal(job.returnValue.sealedResults, '[sealed]');
    }
  });
});

/** `km`, whose wraps all wait until `n` of them are under way: n processes that all found no key yet. */
function wrapsTogether(km: KeyManager, n: number): KeyManager {
  const waiting: (() => void)[] = [];
  return {
    kind: km.kind,
    get kekId() {
      return km.kekId;
    },
    async wrap(dek) {
      const wrapped = await km.wrap(dek);
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (waiting.length === n) for (const go of waiting) go();
      });
      return wrapped;
    },
    unwrap: (wrapped, kekId) => km.unwrap(wrapped, kekId),
    close: () => km.close(),
  };
}

// The NIP-46 door needs no sealing: its jobs carry the client's encrypted request event and return the
// encrypted response event. This holds it to that, with the same marker search over the same calls.
describe('NIP-46 content never sits readable in Redis either', () => {
  it('leaves no marker in Redis or on its channels after BunkerSigner calls carrying it', async () => {
    const relay: TestRelay = await startTestRelay();
    const farm = await startTestFarm(
      'sealed-payloads-nip46',
      { BUNKER_RELAYS: relay.url },
      { api: true, workers: true, relayIngest: true },
    );
    const listener = await listenAll(farm.config.KEY_PREFIX);
    const pool = new SimplePool();
    let signer: BunkerSigner | undefined;
    try {
      const user = await registerUser(farm.url);
      const created = await call(
        farm.url,
        'POST',
        '/api/user/bunker/create',
        { app_name: 'sealed test' },
        user.session,
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const bp = (await parseBunkerInput(created.body.bunker_url))!;
      recordSecret(bp.secret!);
      const client = peerKey();
      signer = BunkerSigner.fromBunker(client.sk, bp, { pool });
      await within(10_000, signer.connect(), 'connect');

      const peer = peerKey();
      const conv = nip44.v2.utils.getConversationKey(peer.sk, user.pubkey);
      const signed = await signer.signEvent({
        kind: 1,
        content: `draft ${MARKER}`,
        tags: [['subject', MARKER]],
        created_at: Math.floor(Date.now() / 1000),
      });
      assert.ok(verifyEvent(signed) && signed.content.includes(MARKER));
      assert.equal(
        nip44.v2.decrypt(await signer.nip44Encrypt(peer.pk, `note 44 ${MARKER}`), conv),
        `note 44 ${MARKER}`,
      );
      assert.equal(
        await signer.nip44Decrypt(peer.pk, nip44.v2.encrypt(`reply 44 ${MARKER}`, conv)),
        `reply 44 ${MARKER}`,
      );
      assert.equal(
        await nip04.decrypt(peer.sk, user.pubkey, await signer.nip04Encrypt(peer.pk, `note 04 ${MARKER}`)),
        `note 04 ${MARKER}`,
      );
      assert.equal(
        await signer.nip04Decrypt(peer.pk, await nip04.encrypt(peer.sk, user.pubkey, `reply 04 ${MARKER}`)),
        `reply 04 ${MARKER}`,
      );

      const redis = suiteRedis();
      const dump = await dumpRedis(redis, farm.config.KEY_PREFIX).finally(() => redis.disconnect());
      assert.ok(
        dump.some((k) => k.type === 'string' && k.key.includes(':job:') && k.text.includes('\\"type\\":\\"nip46\\"')),
        'the dump holds the NIP-46 jobs',
      );
      assert.ok(
        listener.heard.some((m) => m.channel.includes(':reply:')),
        'the listener heard the replies',
      );
      assert.deepEqual(leaksOf(dump, listener.heard), []);
    } finally {
      await signer?.close().catch(() => undefined);
      pool.destroy();
      listener.close();
      await farm.stop();
      await relay.stop();
    }
  });
});

describe('the farm payload key', () => {
  it('is made once by processes starting together, opened alike by all, and re-wrapped by KEK rotation', async () => {
    const db = await createTestDatabase();
    await migrateDatabase(db.url);
    const keyPath = path.join(testDataDir(), 'master.key');
    const pools = Array.from({ length: 4 }, () => testPool(db.url, 2));
    const kms: LocalKeyManager[] = [];
    const openKm = async () => {
      const km = await LocalKeyManager.open(keyPath, { watchIntervalMs: 0 });
      recordSecret(readFileSync(keyPath).toString('hex'));
      kms.push(km);
      return km;
    };
    try {
      const oldKm = await openKm();
      // Four processes start at once on an empty table and each makes a key: one is stored and all use it.
      const together = wrapsTogether(oldKm, pools.length);
      const sealers = await Promise.all(pools.map((pool) => loadPayloadSealer(pool, together)));
      const sealed = sealers[0]!.seal(MARKER, 'aad');
      for (const sealer of sealers) assert.equal(sealer.open(sealed, 'aad'), MARKER);
      const { rows } = await pools[0]!.query<{ kekId: string }>('SELECT kek_id AS "kekId" FROM payload_keys');
      assert.deepEqual(rows, [{ kekId: oldKm.kekId }], 'one row, sealed under the KEK');
      assert.equal(
        await loadPayloadSealer(pools[1]!, oldKm).then((s) => s.open(sealed, 'aad')),
        MARKER,
        'a later start opens the same key',
      );

      // A new master key, the rotation, and the old KEK gone: the payload key still opens, to the same key.
      await installMasterKey(keyPath, { generate: true });
      const newKm = await openKm();
      const rotation = await rotateKek({ db: pools[0]!, km: newKm });
      assert.equal(rotation.payloadKeysRewrapped, 1);
      assert.deepEqual(rotation.failed, []);
      await rm(`${keyPath}.keyring`, { recursive: true });
      const onlyNew = await openKm();
      assert.deepEqual(onlyNew.knownKekIds, [newKm.kekId]);
      assert.equal((await loadPayloadSealer(pools[2]!, onlyNew)).open(sealed, 'aad'), MARKER);
      assert.equal(
        (await rotateKek({ db: pools[0]!, km: onlyNew })).payloadKeysRewrapped,
        0,
        'a second run has nothing to move',
      );
    } finally {
      for (const km of kms) await km.close();
      for (const pool of pools) await pool.end();
      await db.drop().catch(() => undefined);
    }
  });
});
