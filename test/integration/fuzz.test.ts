// Bad input gets a clear 4xx with a JSON error, never a 500, and the server keeps serving.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';

/** mulberry32: a small seeded PRNG so a failure can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * (depth > 2 ? 7 : 10));
  switch (pick) {
    case 0: return null;
    case 1: return rand() < 0.5;
    case 2: return Math.floor(rand() * 2 ** 40) * (rand() < 0.5 ? -1 : 1);
    case 3: return rand() * 1e308;
    case 4: return 'x'.repeat(Math.floor(rand() * 300));
    case 5: return ['', 'nsec1', '0'.repeat(64), 'f'.repeat(64), '\u0000', '💥', '{"a":', 'null', 'policy:full'][Math.floor(rand() * 9)];
    case 6: return Math.floor(rand() * 70000);
    case 7: return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth + 1));
    default: {
      const keys = ['method', 'params', 'email', 'password', 'nsec', 'kind', 'content', 'tags', 'created_at', 'grant_type', 'code',
        'client_id', 'redirect_uri', 'approved', 'app_name', 'policy_slug', 'relays', 'authorization_id', 'bunker_pubkey', '__proto__', 'constructor'];
      const obj: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 5); i > 0; i--) obj[keys[Math.floor(rand() * keys.length)]!] = randomValue(rand, depth + 1);
      return obj;
    }
  }
}

const RAW_BODIES = ['', '{', '[]', 'null', '"str"', '{"method":', '{"method":"sign_event","params":[{"kind":1}]', 'not json at all', '\u0000\u0001', '{"a":1}}'];

function assertClientError(res: { status: number; body: unknown }, what: string) {
  assert.ok(res.status >= 400 && res.status < 500, `${what}: expected 4xx, got ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  const body = res.body as { error?: unknown };
  assert.equal(typeof body?.error, 'string', `${what}: JSON error body, got ${JSON.stringify(res.body).slice(0, 200)}`);
  assert.ok(!/\n\s+at /.test(String(body.error)), `${what}: no stack trace`);
}

describe('fuzzing the edge', () => {
  let farm: TestFarm;
  let base: string;
  let session: string;
  let token: string;

  before(async () => {
    farm = await startTestFarm('fuzz');
    base = farm.url;
    const user = await registerUser(base);
    session = user.session;
    token = (await authorizeApp(base, session, 'full')).access_token;
  });
  after(async () => farm?.stop());

  const ROUTES: [string, string, 'none' | 'session' | 'access'][] = [
    ['POST', '/api/nostr', 'access'],
    ['POST', '/api/auth/register', 'none'],
    ['POST', '/api/auth/login', 'none'],
    ['POST', '/api/oauth/token', 'none'],
    ['POST', '/api/oauth/authorize', 'session'],
    ['POST', '/api/user/bunker/create', 'session'],
    ['POST', '/api/user/sessions/revoke', 'session'],
  ];
  const credential = (kind: string) => (kind === 'access' ? token : kind === 'session' ? session : undefined);

  it('answers malformed JSON, wrong content types and raw garbage with 4xx JSON errors', async () => {
    for (const [method, path, auth] of ROUTES) {
      for (const raw of RAW_BODIES) {
        assertClientError(await call(base, method, path, raw, credential(auth), { 'content-type': 'application/json' }), `${path} ${JSON.stringify(raw)}`);
      }
      assertClientError(await call(base, method, path, 'a=b', credential(auth), { 'content-type': 'text/plain' }), `${path} text/plain`);
    }
  });

  it('answers random wrong types and shapes with 4xx JSON errors', async () => {
    const rand = prng(0x5eed);
    for (let i = 0; i < 400; i++) {
      const [method, path, auth] = ROUTES[i % ROUTES.length]!;
      const body = randomValue(rand);
      const res = await call(base, method, path, JSON.stringify(body), credential(auth), { 'content-type': 'application/json' });
      // A random body can, rarely, be valid (e.g. a ping); anything else must be a clean 4xx.
      if (res.status < 400) continue;
      assertClientError(res, `${path} ${JSON.stringify(body).slice(0, 120)}`);
    }
  });

  it('fuzzes RPC params per method, including events with bad fields and bad keys', async () => {
    const rand = prng(42);
    const methods = ['sign_event', 'nip44_encrypt', 'nip44_decrypt', 'nip04_encrypt', 'nip04_decrypt'];
    const badEvents = [
      { kind: 1.5, content: '', tags: [], created_at: 1 }, { kind: 70000, content: '', tags: [], created_at: 1 },
      { kind: 1, content: 5, tags: [], created_at: 1 }, { kind: 1, content: '', tags: [[1]], created_at: 1 },
      { kind: 1, content: '', tags: 'x', created_at: 1 }, { kind: 1, content: '', tags: [], created_at: -5 },
      { kind: 1, content: '', tags: [], created_at: 'now' }, { content: '', tags: [], created_at: 1 }, '{"kind":', 42,
    ];
    for (const ev of badEvents) assertClientError(await rpc(base, token, 'sign_event', [ev]), `event ${JSON.stringify(ev)}`);
    const badPeers = ['', 'zz', 'F'.repeat(64), '0'.repeat(64), 'f'.repeat(63), 'f'.repeat(65), 'ff'.repeat(32) + '\n'];
    for (const peer of badPeers) for (const m of methods.slice(1)) assertClientError(await rpc(base, token, m, [peer, 'x']), `${m} ${peer}`);
    for (let i = 0; i < 200; i++) {
      const m = methods[i % methods.length]!;
      const params = Array.from({ length: Math.floor(rand() * 3) }, () => randomValue(rand));
      const res = await rpc(base, token, m, params);
      if (res.status < 400) continue;
      assertClientError(res, `${m} ${JSON.stringify(params).slice(0, 120)}`);
    }
  });

  it('refuses huge bodies with 413 and bad credentials with 401', async () => {
    const huge = JSON.stringify({ method: 'sign_event', params: [{ kind: 1, content: 'x'.repeat(2 * 1024 * 1024), tags: [], created_at: 1 }] });
    const res = await call(base, 'POST', '/api/nostr', huge, token);
    assert.equal(res.status, 413);
    assertClientError(res, 'huge body');
    assertClientError(await call(base, 'POST', '/api/auth/register', JSON.stringify({ email: 'a@b.c', password: 'p'.repeat(5000) })), 'huge password');
    for (const bad of ['Bearer', 'Bearer ' + 'x'.repeat(4000), 'Basic abc', 'Bearer kfa_' + '\u00ff'.repeat(10)]) {
      const r = await call(base, 'POST', '/api/nostr', { method: 'ping', params: [] }, undefined, { authorization: bad });
      assertClientError(r, `authorization ${bad.slice(0, 20)}`);
    }
  });

  it('still serves afterwards', async () => {
    assert.deepEqual((await rpc(base, token, 'ping')).body, { result: 'pong' });
    const signed = await rpc(base, token, 'sign_event', [{ kind: 1, content: 'after the storm', tags: [], created_at: 1700000000 }]);
    assert.equal(signed.status, 200);
    assert.equal((await call(base, 'GET', '/healthz/ready')).status, 200);
  });
});
