// No message content in Redis: after HTTP nip44/nip04 encrypt and decrypt and sign_event calls whose
// plaintexts, decrypted texts and events carry a unique marker, every key under the farm's prefix (job
// hashes, return values, events streams, everything), every message on its pub/sub channels and Bull
// Board's view of the jobs are searched for the marker in clear, hex and base64, and it is not there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { generateSecretKey, getPublicKey, nip04, nip44, verifyEvent } from 'nostr-tools';
import { authorizeApp, registerUser, rpc } from '../support/client.js';
import { redisUrl } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { dumpRedis, markersIn, type DumpedKey } from '../support/redis-dump.js';

const MARKER = `kf-private-${randomBytes(8).toString('hex')}`;

const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;

describe('RPC content never sits readable in Redis', () => {
  let farm: TestFarm;
  let listener: Redis;
  let redis: Redis;
  const heard: { channel: string; message: string }[] = [];
  let dump: DumpedKey[] = [];

  before(async () => {
    farm = await startTestFarm('sealed-payloads');
    redis = new Redis(redisUrl());
    listener = new Redis(redisUrl());
    listener.on('pmessage', (_pattern: string, channel: string, message: string) => heard.push({ channel, message }));
    await listener.psubscribe(`${farm.config.KEY_PREFIX}:*`);

    const user = await registerUser(farm.url);
    const { access_token: token } = await authorizeApp(farm.url, user.session, 'full');
    const peerSk = generateSecretKey();
    const peerPk = getPublicKey(peerSk);
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
    assert.equal(await ok('nip44_decrypt', [peerPk, nip44.v2.encrypt(`reply 44 ${MARKER}`, conv)]), `reply 44 ${MARKER}`);
    const enc04 = await ok('nip04_encrypt', [peerPk, `note 04 ${MARKER}`]);
    assert.equal(await nip04.decrypt(peerSk, user.pubkey, enc04), `note 04 ${MARKER}`);
    assert.equal(await ok('nip04_decrypt', [peerPk, await nip04.encrypt(peerSk, user.pubkey, `reply 04 ${MARKER}`)]), `reply 04 ${MARKER}`);
    const draft = { kind: 1, content: `draft ${MARKER}`, tags: [['subject', MARKER]], created_at: Math.floor(Date.now() / 1000) };
    const signed = await ok('sign_event', [draft]);
    assert.ok(verifyEvent(signed) && signed.content === draft.content, 'the farm signed the draft as given');

    dump = await dumpRedis(redis, farm.config.KEY_PREFIX);
  });
  after(async () => {
    listener?.disconnect();
    redis?.disconnect();
    await farm?.stop();
  });

  /** The job hashes of the RPC jobs the calls made (kept 60 s after they finish). */
  const rpcJobs = () => dump.filter((k) => k.type === 'hash' && k.text.includes('\\"type\\":\\"rpc\\"'));

  it('holds no marker in any key of any type, the jobs and their results included', () => {
    const jobs = rpcJobs();
    assert.ok(jobs.length >= 1, `the dump holds the RPC jobs (${dump.length} keys: ${dump.map((k) => k.key).join(', ')})`);
    assert.ok(jobs.every((j) => j.text.includes('"returnvalue"')), 'and their stored results');
    assert.ok(dump.some((k) => k.type === 'stream'), 'and the queues\' events streams');
    const leaks = dump.flatMap((k) => markersIn(k.text, MARKER).map((form) => `${k.key} (${k.type}) holds ${form}`));
    assert.deepEqual(leaks, []);
  });

  it('publishes no marker on the reply channels', () => {
    const replies = heard.filter((m) => m.channel.startsWith(`${farm.config.KEY_PREFIX}:reply:`));
    assert.ok(replies.length >= 1, `the listener heard the replies (${heard.length} messages)`);
    const leaks = heard.flatMap((m) => markersIn(m.message, MARKER).map((form) => `${m.channel} carried ${form}`));
    assert.deepEqual(leaks, []);
  });

  it('shows the jobs\' calls and results in Bull Board as [sealed]', async () => {
    const jobs = rpcJobs();
    assert.ok(jobs.length >= 1);
    for (const { key } of jobs) {
      // <prefix>:{shard-N}:shard-N:<job id>
      const [, queue, jobId] = /:(shard-\d+):([^:]+)$/.exec(key)!;
      const res = await fetch(`${farm.url}/admin/queues/api/queues/${queue}/${encodeURIComponent(jobId!)}`, {
        headers: { authorization: basic(farm.env.ADMIN_PASSWORD!) },
      });
      assert.equal(res.status, 200, `${queue}/${jobId}`);
      const body = await res.text();
      assert.deepEqual(markersIn(body, MARKER), [], `${queue}/${jobId} shows no marker`);
      const { job } = JSON.parse(body) as { job: { data: { items: { method: string; call: unknown }[] }; returnValue: { results: { ok: boolean; result?: unknown }[] } } };
      assert.ok(job.data.items.length >= 1);
      for (const item of job.data.items) {
        assert.ok(['nip44_encrypt', 'nip44_decrypt', 'nip04_encrypt', 'nip04_decrypt', 'sign_event'].includes(item.method), 'the method stays readable');
        assert.equal(item.call, '[sealed]');
      }
      for (const r of job.returnValue.results) assert.deepEqual({ ok: r.ok, result: r.result }, { ok: true, result: '[sealed]' });
    }
  });
});
