// Custom policies through the real farm (api, relay-ingest, workers on real Redis and PostgreSQL; NIP-46
// over a real relay with nostr-tools' BunkerSigner): each right refused and allowed on both doors, the
// content size limit, the lifetime, the count of uses under concurrent requests, a change of policy in force
// on the very next request, another user's policy out of reach, and bad input refused without effect.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, nip04, nip44, verifyEvent } from 'nostr-tools';
import { type BunkerSigner, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { useWebSocketImplementation as usePoolWebSocket } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { startApi, type RunningApi } from '../../api/index.js';
import { openKeyManager, VERSION } from '../../bin/runtime.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { loadPayloadSealer } from '../../shared/farm/payload-key.js';
import { authorizeApp, call, registerUser, rpc, type TestUser as User } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { recordSecret, testLogger } from '../support/logs.js';
import type { TestRelay } from '../support/relay.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { within } from '../support/wait.js';
import { closeRedis, createRedis, isCluster } from '../../shared/redis.js';

usePoolWebSocket(WebSocket);

function peerKey() {
  const sk = generateSecretKey();
  recordSecret(bytesToHex(sk));
  return { sk, pk: getPublicKey(sk) };
}

const note = (kind: number, content = 'hi') => ({
  kind,
  content,
  tags: [] as string[][],
  created_at: Math.floor(Date.now() / 1000),
});

/** One right per NIP: NIP-44 may encrypt only, NIP-04 may decrypt only; kinds 1 and 7; 40 bytes of content. */
const NARROW = {
  allowed_kinds: [7, 1, 1],
  nip44_encrypt: true,
  nip44_decrypt: false,
  nip04_encrypt: false,
  nip04_decrypt: true,
  max_content_bytes: 40,
};

describe('custom policies', () => {
  let relay: TestRelay;
  let farm: TestFarm;
  let base: string;
  /** A second api instance over the same database and Redis, as in a deployment. */
  let apiB: RunningApi;
  let keyManagerB: KeyManager;
  let alice: User;
  let bob: User;
  const clients = new BunkerClients();

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('custom-policies', {
      RPC_TIMEOUT_MS: '3000',
      MAX_POLICIES_PER_USER: '10',
    }));
    base = farm.url;
    keyManagerB = await openKeyManager(farm.rt);
    apiB = await startApi({
      config: farm.config,
      logger: testLogger('custom-policies-api-b'),
      db: farm.rt.db,
      redisUrl: farm.rt.redisUrl,
      keyManager: keyManagerB,
      payloadSealer: await loadPayloadSealer(farm.rt.db, keyManagerB),
      version: VERSION,
    });
    alice = await registerUser(base);
    bob = await registerUser(base);
  });

  after(async () => {
    await clients.close();
    await apiB?.close();
    await keyManagerB?.close();
    await farm?.stop();
    await relay?.stop();
  });

  async function createPolicy(user: User, permissions: Record<string, unknown>, name = 'mine'): Promise<string> {
    const res = await call(base, 'POST', '/api/user/policies', { name, permissions }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.slug as string;
  }

  /** An OAuth app of `user` under `policy`: its HTTP token and authorization id. */
  async function httpApp(user: User, policy: string): Promise<{ token: string; id: string }> {
    const app = await authorizeApp(base, user.session, policy, `app-${Math.random().toString(36).slice(2)}`);
    assert.equal(app.policy.slug, policy);
    const sessions = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
    const id = (sessions.body as { authorization_id: string; created_at: string }[]).sort((a, b) =>
      b.created_at.localeCompare(a.created_at),
    )[0]!.authorization_id;
    return { token: app.access_token, id };
  }

  /** A bunker of `user` under `policy`, connected by a BunkerSigner. */
  async function nip46App(user: User, policy: string): Promise<{ signer: BunkerSigner; id: string }> {
    const res = await call(
      base,
      'POST',
      '/api/user/bunker/create',
      { app_name: 'policy test', policy_slug: policy },
      user.session,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const bp = (await parseBunkerInput(res.body.bunker_url)) as BunkerPointer;
    recordSecret(bp.secret!);
    const signer = await clients.connected(bp);
    return { signer, id: res.body.authorization_id };
  }

  it('creates, lists, reads, replaces and deletes a policy, normalised and bounded', async () => {
    const slug = await createPolicy(alice, { ...NARROW, max_uses: 10, expires_after_seconds: 3600 }, 'Notes only');
    assert.match(slug, /^p-[a-z0-9]+$/);
    const got = await call(base, 'GET', `/api/user/policies/${slug}`, undefined, alice.session);
    assert.equal(got.status, 200);
    assert.equal(got.body.name, 'Notes only');
    assert.deepEqual(got.body.permissions, {
      allowed_kinds: [1, 7],
      encrypt: true,
      decrypt: true,
      nip04_encrypt: false,
      nip04_decrypt: true,
      nip44_encrypt: true,
      nip44_decrypt: false,
      max_content_bytes: 40,
      expires_after_seconds: 3600,
      max_uses: 10,
    });
    const list = await call(base, 'GET', '/api/user/policies', undefined, alice.session);
    assert.ok(list.body.some((p: { slug: string }) => p.slug === slug));

    const put = await call(
      base,
      'PUT',
      `/api/user/policies/${slug}`,
      { name: 'Renamed', permissions: { allowed_kinds: 'all', encrypt: true } },
      alice.session,
    );
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.permissions, {
      allowed_kinds: 'all',
      encrypt: true,
      decrypt: false,
      nip04_encrypt: true,
      nip04_decrypt: false,
      nip44_encrypt: true,
      nip44_decrypt: false,
    });
    assert.equal((await call(base, 'DELETE', `/api/user/policies/${slug}`, undefined, alice.session)).status, 204);
    assert.equal((await call(base, 'GET', `/api/user/policies/${slug}`, undefined, alice.session)).status, 404);
    // The built-ins are untouched by custom ones.
    const builtIns = await call(base, 'GET', '/api/policies');
    assert.deepEqual(
      builtIns.body.map((p: { slug: string }) => p.slug),
      ['social', 'readonly', 'messaging', 'wallet', 'full'],
    );
  });

  it('refuses bad input with a 4xx and changes nothing', async () => {
    const user = await registerUser(base);
    const slug = await createPolicy(user, { allowed_kinds: [1] }, 'keep');
    const before = await call(base, 'GET', '/api/user/policies', undefined, user.session);
    const good = { allowed_kinds: [1] };
    const bodies: unknown[] = [
      {},
      { name: 'x' },
      { name: '', permissions: good },
      { name: '   ', permissions: good },
      { name: 'a'.repeat(101), permissions: good },
      { name: 'nul\u0000name', permissions: good },
      { name: 'x', description: 'd'.repeat(501), permissions: good },
      { name: 'x', permissions: { allowed_kinds: [65_536] } },
      { name: 'x', permissions: { allowed_kinds: [-1] } },
      { name: 'x', permissions: { allowed_kinds: [1.5] } },
      { name: 'x', permissions: { allowed_kinds: ['1'] } },
      { name: 'x', permissions: { allowed_kinds: Array.from({ length: 257 }, (_, i) => i) } },
      { name: 'x', permissions: { allowed_kinds: 'some' } },
      { name: 'x', permissions: { allowed_kinds: [1], encrypt: 'yes' } },
      { name: 'x', permissions: { allowed_kinds: [1], max_content_bytes: 0 } },
      { name: 'x', permissions: { allowed_kinds: [1], max_content_bytes: 2_000_000 } },
      { name: 'x', permissions: { allowed_kinds: [1], expires_after_seconds: 59 } },
      { name: 'x', permissions: { allowed_kinds: [1], max_uses: 0 } },
      { name: 'x', permissions: { allowed_kinds: [1], max_uses: 1e12 } },
      { name: 'x', permissions: { allowed_kinds: [1], ask: true, owner_user_id: bob.pubkey } },
      { name: 'x', permissions: good, owner_user_id: bob.pubkey },
      { name: 'x', permissions: good, slug: 'full' },
      '{"name": "x", "permissions": ',
      [],
      null,
    ];
    for (const body of bodies) {
      for (const [method, path] of [
        ['POST', '/api/user/policies'],
        ['PUT', `/api/user/policies/${slug}`],
      ] as const) {
        const res = await call(base, method, path, body, user.session);
        assert.ok(res.status >= 400 && res.status < 500, `${method} ${JSON.stringify(body)}: ${res.status}`);
        assert.equal(typeof res.body.error, 'string');
      }
    }
    for (const badSlug of ['FULL', 'a'.repeat(65), '..%2f', '%00']) {
      const res = await call(base, 'GET', `/api/user/policies/${badSlug}`, undefined, user.session);
      assert.ok(res.status >= 400 && res.status < 500, badSlug);
    }
    // A built-in is nobody's to edit or delete.
    const onBuiltIn = await call(
      base,
      'PUT',
      '/api/user/policies/full',
      { name: 'x', permissions: good },
      user.session,
    );
    assert.equal(onBuiltIn.status, 404);
    assert.equal((await call(base, 'DELETE', '/api/user/policies/readonly', undefined, user.session)).status, 404);
    for (const body of [{}, { policy: 'FULL' }, { policy: 'nope' }, { policy: 'full', extra: 1 }]) {
      const res = await call(
        base,
        'PATCH',
        '/api/user/authorizations/00000000-0000-4000-8000-000000000000',
        body,
        user.session,
      );
      assert.ok(res.status >= 400 && res.status < 500, JSON.stringify(body));
    }
    // Without a session nothing is reachable.
    assert.equal((await call(base, 'GET', '/api/user/policies')).status, 401);
    assert.equal((await call(base, 'POST', '/api/user/policies', { name: 'x', permissions: good })).status, 401);

    const afterwards = await call(base, 'GET', '/api/user/policies', undefined, user.session);
    assert.deepEqual(afterwards.body, before.body);
    const builtIns = await call(base, 'GET', '/api/policies');
    assert.equal(builtIns.body.find((p: { slug: string }) => p.slug === 'full').permissions.allowed_kinds, 'all');
  });

  it('caps the policies one user may own, even when created all at once', async () => {
    const user = await registerUser(base);
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call(base, 'POST', '/api/user/policies', { name: `p${i}`, permissions: { allowed_kinds: [1] } }, user.session),
      ),
    );
    assert.equal(results.filter((r) => r.status === 201).length, 10);
    assert.ok(results.filter((r) => r.status !== 201).every((r) => r.status === 409));
    const list = await call(base, 'GET', '/api/user/policies', undefined, user.session);
    assert.equal(list.body.length, 10);
  });

  it("attack: another user's policy cannot be read, edited, deleted or used", async () => {
    const slug = await createPolicy(alice, { allowed_kinds: 'all', encrypt: true, decrypt: true }, "alice's");
    const original = await call(base, 'GET', `/api/user/policies/${slug}`, undefined, alice.session);

    assert.equal((await call(base, 'GET', `/api/user/policies/${slug}`, undefined, bob.session)).status, 404);
    const put = await call(
      base,
      'PUT',
      `/api/user/policies/${slug}`,
      { name: 'taken', permissions: { allowed_kinds: [] } },
      bob.session,
    );
    assert.equal(put.status, 404);
    assert.equal((await call(base, 'DELETE', `/api/user/policies/${slug}`, undefined, bob.session)).status, 404);
    const listed = await call(base, 'GET', '/api/user/policies', undefined, bob.session);
    assert.ok(!listed.body.some((p: { slug: string }) => p.slug === slug));

    // Using it: a bunker, an OAuth grant, a switch of Bob's own authorization.
    const bunker = await call(
      base,
      'POST',
      '/api/user/bunker/create',
      { app_name: 'thief', policy_slug: slug },
      bob.session,
    );
    assert.equal(bunker.status, 400);
    const grant = await call(
      base,
      'POST',
      '/api/oauth/authorize',
      {
        client_id: 'thief',
        redirect_uri: 'http://127.0.0.1:9/cb',
        scope: `policy:${slug}`,
        approved: true,
        code_challenge: 'a'.repeat(43),
        code_challenge_method: 'S256',
      },
      bob.session,
    );
    assert.equal(grant.status, 400, JSON.stringify(grant.body));
    const bobs = await httpApp(bob, 'readonly');
    const patch = await call(base, 'PATCH', `/api/user/authorizations/${bobs.id}`, { policy: slug }, bob.session);
    assert.equal(patch.status, 400);
    assert.equal((await rpc(base, bobs.token, 'sign_event', [note(1)])).status, 403);

    // Nor may Bob move Alice's authorization to another policy.
    const alices = await httpApp(alice, slug);
    const hijack = await call(
      base,
      'PATCH',
      `/api/user/authorizations/${alices.id}`,
      { policy: 'readonly' },
      bob.session,
    );
    assert.equal(hijack.status, 404);
    assert.equal((await rpc(base, alices.token, 'sign_event', [note(1)])).status, 200);

    const still = await call(base, 'GET', `/api/user/policies/${slug}`, undefined, alice.session);
    assert.deepEqual(still.body, original.body);
  });

  it('enforces kinds, per-NIP rights and the content size on the HTTP door', async () => {
    const slug = await createPolicy(alice, NARROW, 'narrow http');
    const { token } = await httpApp(alice, slug);
    const peer = peerKey();

    assert.equal((await rpc(base, token, 'sign_event', [note(1)])).status, 200);
    assert.equal((await rpc(base, token, 'sign_event', [note(7)])).status, 200);
    const kind4 = await rpc(base, token, 'sign_event', [note(4)]);
    assert.equal(kind4.status, 403);
    assert.equal(kind4.body.error, 'Operation denied by policy');

    const enc44 = await rpc(base, token, 'nip44_encrypt', [peer.pk, 'to a friend']);
    assert.equal(enc44.status, 200);
    assert.equal(nip44.decrypt(enc44.body.result, nip44.getConversationKey(peer.sk, alice.pubkey)), 'to a friend');
    assert.equal((await rpc(base, token, 'nip04_encrypt', [peer.pk, 'to a friend'])).status, 403);
    const in04 = nip04.encrypt(peer.sk, alice.pubkey, 'for alice');
    const dec04 = await rpc(base, token, 'nip04_decrypt', [peer.pk, in04]);
    assert.equal(dec04.status, 200);
    assert.equal(dec04.body.result, 'for alice');
    const in44 = nip44.encrypt('for alice', nip44.getConversationKey(peer.sk, alice.pubkey));
    assert.equal((await rpc(base, token, 'nip44_decrypt', [peer.pk, in44])).status, 403);

    // 40 bytes pass; 41 do not; the limit counts UTF-8 bytes, not characters.
    assert.equal((await rpc(base, token, 'sign_event', [note(1, 'x'.repeat(40))])).status, 200);
    const big = await rpc(base, token, 'sign_event', [note(1, 'x'.repeat(41))]);
    assert.equal(big.status, 403);
    assert.match(big.body.error, /content too large for this policy \(at most 40 bytes\)/);
    assert.equal((await rpc(base, token, 'sign_event', [note(1, 'é'.repeat(21))])).status, 403);
    assert.equal((await rpc(base, token, 'nip44_encrypt', [peer.pk, 'y'.repeat(41)])).status, 403);
    assert.equal((await rpc(base, token, 'nip44_encrypt', [peer.pk, 'y'.repeat(40)])).status, 200);
    assert.equal((await rpc(base, token, 'get_public_key')).status, 200);
  });

  it('enforces kinds, per-NIP rights and the content size on the NIP-46 door', async () => {
    const slug = await createPolicy(alice, NARROW, 'narrow nip46');
    const { signer } = await nip46App(alice, slug);
    const peer = peerKey();

    const signed = await within(5000, signer.signEvent(note(1)), 'sign kind 1');
    assert.ok(verifyEvent(signed));
    await assert.rejects(within(5000, signer.signEvent(note(4)), 'sign kind 4'), /Operation denied by policy/);

    const enc44 = await within(5000, signer.nip44Encrypt(peer.pk, 'to a friend'), 'nip44_encrypt');
    assert.equal(nip44.decrypt(enc44, nip44.getConversationKey(peer.sk, alice.pubkey)), 'to a friend');
    await assert.rejects(within(5000, signer.nip04Encrypt(peer.pk, 'x'), 'nip04_encrypt'), /denied by policy/);
    const in04 = nip04.encrypt(peer.sk, alice.pubkey, 'for alice');
    assert.equal(await within(5000, signer.nip04Decrypt(peer.pk, in04), 'nip04_decrypt'), 'for alice');
    const in44 = nip44.encrypt('for alice', nip44.getConversationKey(peer.sk, alice.pubkey));
    await assert.rejects(within(5000, signer.nip44Decrypt(peer.pk, in44), 'nip44_decrypt'), /denied by policy/);

    await within(5000, signer.signEvent(note(7, 'z'.repeat(40))), 'sign 40 bytes');
    await assert.rejects(
      within(5000, signer.signEvent(note(7, 'z'.repeat(41))), 'sign 41 bytes'),
      /content too large for this policy/,
    );
    await assert.rejects(
      within(5000, signer.nip44Encrypt(peer.pk, 'z'.repeat(41)), 'encrypt 41 bytes'),
      /content too large for this policy/,
    );
  });

  it('ends an authorization when its policy lifetime is over, on both doors', async () => {
    const slug = await createPolicy(alice, { allowed_kinds: [1], expires_after_seconds: 60 }, 'one minute');
    const fresh = await httpApp(alice, slug);
    const old = await httpApp(alice, slug);
    const bunker = await nip46App(alice, slug);
    // Made 61 seconds ago, as far as the table knows: past the policy's lifetime.
    await farm.rt.db.query("UPDATE authorizations SET created_at = now() - interval '61 seconds' WHERE id = ANY($1)", [
      [old.id, bunker.id],
    ]);
    // The NIP-46 door had this authorization cached since connect: a policy change evicts it (the same
    // path as every other change), and the next request reads the lifetime.
    const touch = await call(base, 'PATCH', `/api/user/authorizations/${bunker.id}`, { policy: slug }, alice.session);
    assert.equal(touch.status, 200);

    assert.equal((await rpc(base, fresh.token, 'sign_event', [note(1)])).status, 200);
    const expired = await rpc(base, old.token, 'sign_event', [note(1)]);
    assert.equal(expired.status, 403);
    assert.equal(expired.body.error, 'authorization expired');
    await assert.rejects(within(5000, bunker.signer.signEvent(note(1)), 'sign after expiry'), /authorization expired/);
    const listed = await call(base, 'GET', '/api/user/sessions', undefined, alice.session);
    assert.ok(listed.status === 200);
  });

  it('attack: many requests at once take no more than max_uses, on each door', async () => {
    const slug = await createPolicy(alice, { allowed_kinds: [1], max_uses: 5 }, 'five uses');
    const { token } = await httpApp(alice, slug);
    // Half of them to each api instance: the count is one across replicas.
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => rpc(i % 2 ? apiB.url : base, token, 'sign_event', [note(1, `n${i}`)])),
    );
    assert.equal(answers.filter((a) => a.status === 200).length, 5);
    const refused = answers.filter((a) => a.status !== 200);
    assert.equal(refused.length, 25);
    for (const r of refused) {
      assert.equal(r.status, 403);
      assert.equal(r.body.error, 'this authorization has used all the uses its policy allows');
    }
    // ping and get_public_key are not uses, and still answer.
    assert.equal((await rpc(base, token, 'get_public_key')).status, 200);

    const nip46Slug = await createPolicy(alice, { allowed_kinds: [1], max_uses: 3 }, 'three uses');
    const { signer } = await nip46App(alice, nip46Slug);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => within(10_000, signer.signEvent(note(1, `m${i}`)), 'sign')),
    );
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 3);
    for (const o of outcomes.filter((x) => x.status === 'rejected'))
      assert.match(String((o as PromiseRejectedResult).reason), /used all the uses its policy allows/);
  });

  it('attack: a Redis that lost its data gives no uses back', async () => {
    const slug = await createPolicy(alice, { allowed_kinds: [1], max_uses: 2 }, 'two uses');
    const { token, id } = await httpApp(alice, slug);
    for (const n of [1, 2]) assert.equal((await rpc(base, token, 'sign_event', [note(1, `u${n}`)])).status, 200);
    assert.equal((await rpc(base, token, 'sign_event', [note(1, 'u3')])).status, 403);
    // What a Redis restarted past its last fsync, or a replica promoted before it caught up, would have
    // forgotten: every key of this farm naming the authorization or a count of uses.
    const redis = createRedis(farm.rt.redisUrl);
    try {
      await redis.ping(); // a cluster client knows its masters once it has loaded the slots
      const nodes = isCluster(redis) ? redis.nodes('master') : [redis];
      let scanned = 0;
      for (const node of nodes) {
        for await (const keys of node.scanStream({ match: `${farm.config.KEY_PREFIX}*`, count: 500 })) {
          scanned += (keys as string[]).length;
          for (const key of keys as string[]) if (key.includes(id) || /uses/i.test(key)) await redis.del(key);
        }
      }
      assert.ok(scanned > 0, 'the farm keeps its queues under its prefix');
    } finally {
      await closeRedis(redis);
    }
    const again = await rpc(apiB.url, token, 'sign_event', [note(1, 'u4')]);
    assert.equal(again.status, 403);
    assert.equal(again.body.error, 'this authorization has used all the uses its policy allows');
    const { rows } = await farm.rt.db.query('SELECT taken FROM authorization_uses WHERE authorization_id = $1', [id]);
    assert.equal(rows[0]?.taken, 2);
  });

  it("puts a change of an authorization's policy, or of the policy itself, in force on the very next request", async () => {
    const slug = await createPolicy(alice, { allowed_kinds: [1] }, 'notes');
    const http = await httpApp(alice, slug);
    const bunker = await nip46App(alice, slug);
    // Both doors have the authorization cached now.
    assert.equal((await rpc(base, http.token, 'sign_event', [note(1)])).status, 200);
    assert.equal((await rpc(apiB.url, http.token, 'sign_event', [note(1)])).status, 200);
    await within(5000, bunker.signer.signEvent(note(1)), 'nip46 sign before');

    // 1. The authorization switches to readonly: kind 1 is refused at once.
    for (const id of [http.id, bunker.id]) {
      const res = await call(base, 'PATCH', `/api/user/authorizations/${id}`, { policy: 'readonly' }, alice.session);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.policy, 'readonly');
    }
    assert.equal((await rpc(base, http.token, 'sign_event', [note(1)])).status, 403);
    // The other api instance learnt it by the broadcast: its cached copy is gone.
    assert.equal((await rpc(apiB.url, http.token, 'sign_event', [note(1)])).status, 403);
    await assert.rejects(within(5000, bunker.signer.signEvent(note(1)), 'nip46 after switch'), /denied by policy/);
    const sessions = await call(base, 'GET', '/api/user/sessions', undefined, alice.session);
    assert.equal(
      sessions.body.find((s: { authorization_id: string }) => s.authorization_id === http.id).policy,
      'readonly',
    );

    // 2. Back to the custom policy: allowed again, at once.
    for (const id of [http.id, bunker.id])
      assert.equal(
        (await call(base, 'PATCH', `/api/user/authorizations/${id}`, { policy: slug }, alice.session)).status,
        200,
      );
    assert.equal((await rpc(base, http.token, 'sign_event', [note(1)])).status, 200);
    assert.equal((await rpc(apiB.url, http.token, 'sign_event', [note(1)])).status, 200);
    await within(5000, bunker.signer.signEvent(note(1)), 'nip46 after switching back');

    // 3. The policy itself is edited to drop kind 1 and allow kind 7: both authorizations follow at once.
    const put = await call(
      base,
      'PUT',
      `/api/user/policies/${slug}`,
      { name: 'reactions', permissions: { allowed_kinds: [7] } },
      alice.session,
    );
    assert.equal(put.status, 200);
    assert.equal((await rpc(base, http.token, 'sign_event', [note(1)])).status, 403);
    assert.equal((await rpc(base, http.token, 'sign_event', [note(7)])).status, 200);
    assert.equal((await rpc(apiB.url, http.token, 'sign_event', [note(1)])).status, 403);
    await assert.rejects(within(5000, bunker.signer.signEvent(note(1)), 'nip46 after edit'), /denied by policy/);
    await within(5000, bunker.signer.signEvent(note(7)), 'nip46 kind 7 after edit');

    // A policy in use cannot be deleted; once no live authorization uses it, it can.
    assert.equal((await call(base, 'DELETE', `/api/user/policies/${slug}`, undefined, alice.session)).status, 409);
    for (const id of [http.id, bunker.id])
      assert.equal(
        (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: id }, alice.session)).status,
        200,
      );
    assert.equal((await call(base, 'DELETE', `/api/user/policies/${slug}`, undefined, alice.session)).status, 204);
    // A revoked authorization cannot be given a policy again.
    const revived = await call(base, 'PATCH', `/api/user/authorizations/${http.id}`, { policy: 'full' }, alice.session);
    assert.equal(revived.status, 404);
  });
});
