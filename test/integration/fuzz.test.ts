// Bad input gets a clear 4xx with a JSON error (an HTML page on the pages), never a 5xx, and the farm keeps
// serving. Every route Fastify registers is fuzzed from its own schema plus hostile values (FUZZ_RUNS inputs,
// 2,500 by default; `npm run fuzz` runs 100,000), then a few hand-made cases hit the RPC params and limits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools/pure';
import type { FastifyInstance } from 'fastify';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { THIRD_PARTY_PREFIX, routesWithoutSchema, watchRoutes, type FuzzRoute } from '../support/fuzz/route-table.js';
import { formatReport, runFuzz } from '../support/fuzz/runner.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2500);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;

function assertClientError(res: { status: number; body: unknown }, what: string) {
  assert.ok(
    res.status >= 400 && res.status < 500,
    `${what}: expected 4xx, got ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
  );
  const body = res.body as { error?: unknown };
  assert.equal(typeof body?.error, 'string', `${what}: JSON error body, got ${JSON.stringify(res.body).slice(0, 200)}`);
  assert.ok(!/\n\s+at /.test(String(body.error)), `${what}: no stack trace`);
}

describe('fuzzing the edge', () => {
  let farm: TestFarm;
  let app: FastifyInstance;
  let routes: FuzzRoute[];
  let token: string;

  before(async () => {
    const watch = watchRoutes();
    try {
      farm = await startTestFarm('fuzz', { ALLOWED_ORIGINS: 'https://app.example' });
      app = watch.app('/api/nostr');
      routes = watch.routes(app);
    } finally {
      watch.stop();
    }
    const user = await registerUser(farm.url);
    token = (await authorizeApp(farm.url, user.session, 'full')).access_token;
  });
  after(async () => farm?.stop());

  it('finds every route from Fastify, and each of ours has a schema for the input it reads', () => {
    const names = new Set(routes.map((r) => `${r.method} ${r.url}`));
    for (const known of [
      'POST /api/nostr',
      'POST /api/auth/register',
      'GET /api/oauth/authorize',
      'POST /account/bunker',
      'POST /login',
    ]) {
      assert.ok(names.has(known), `${known} among ${[...names].join(', ')}`);
    }
    assert.deepEqual(routesWithoutSchema(routes), []);
    // The audit itself: a route that reads its body without a schema is caught.
    const unchecked = { method: 'POST', url: '/x', schema: {}, source: 'async (request) => save(request.body.name)' };
    assert.deepEqual(routesWithoutSchema([unchecked]), ['POST /x: body']);
  });

  it(`answers ${RUNS} generated requests over every route without a 5xx, a crash or a bad header`, async () => {
    // Bull Board's many routes share one password check: fuzz a few of them, not a share each.
    const board = routes.filter((r) => r.url.startsWith(THIRD_PARTY_PREFIX));
    const ours = routes.filter((r) => !r.url.startsWith(THIRD_PARTY_PREFIX));
    const report = await runFuzz(
      { app, url: farm.url, access: token, allowedOrigins: ['https://app.example'] },
      {
        routes: [...ours, ...board.filter((_, i) => i % 8 === 0)],
        runs: RUNS,
        seed: SEED,
        stopOnProblem: true,
        concurrency: 4,
      },
    );
    console.log(formatReport(report));
    assert.equal(report.fiveXx, 0);
    assert.deepEqual(report.crashes, []);
    assert.ok(report.inputs >= RUNS, `${report.inputs} inputs`);
    assert.ok(report.viaHttp > 0, 'a slice went over real HTTP');
    // Some inputs got deep enough to succeed: the fuzz is not only bouncing off the schemas.
    assert.ok(report.routes.filter((r) => r.s2xx + r.s3xx > 0).length >= 10, formatReport(report));
  });

  it('fuzzes RPC params per method with events with bad fields and bad keys', async () => {
    const methods = ['sign_event', 'nip44_encrypt', 'nip44_decrypt', 'nip04_encrypt', 'nip04_decrypt'];
    const badEvents = [
      { kind: 1.5, content: '', tags: [], created_at: 1 },
      { kind: 70000, content: '', tags: [], created_at: 1 },
      { kind: 1, content: 5, tags: [], created_at: 1 },
      { kind: 1, content: '', tags: [[1]], created_at: 1 },
      { kind: 1, content: '', tags: 'x', created_at: 1 },
      { kind: 1, content: '', tags: [], created_at: -5 },
      { kind: 1, content: '', tags: [], created_at: 'now' },
      { content: '', tags: [], created_at: 1 },
      '{"kind":',
      42,
    ];
    for (const ev of badEvents)
      assertClientError(await rpc(farm.url, token, 'sign_event', [ev]), `event ${JSON.stringify(ev)}`);
    const badPeers = ['', 'zz', 'F'.repeat(64), '0'.repeat(64), 'f'.repeat(63), 'f'.repeat(65), `${'ff'.repeat(32)}\n`];
    for (const peer of badPeers)
      for (const m of methods.slice(1)) assertClientError(await rpc(farm.url, token, m, [peer, 'x']), `${m} ${peer}`);
  });

  it('refuses huge bodies with 413 and bad credentials with 401', async () => {
    const huge = JSON.stringify({
      method: 'sign_event',
      params: [{ kind: 1, content: 'x'.repeat(2 * 1024 * 1024), tags: [], created_at: 1 }],
    });
    const res = await call(farm.url, 'POST', '/api/nostr', huge, token);
    assert.equal(res.status, 413);
    assertClientError(res, 'huge body');
    assertClientError(
      await call(
        farm.url,
        'POST',
        '/api/auth/register',
        JSON.stringify({ email: 'a@b.c', password: 'p'.repeat(5000) }),
      ),
      'huge password',
    );
    for (const bad of ['Bearer', `Bearer ${'x'.repeat(4000)}`, 'Basic abc', `Bearer kfa_${'\u00ff'.repeat(10)}`]) {
      const r = await call(farm.url, 'POST', '/api/nostr', { method: 'ping', params: [] }, undefined, {
        authorization: bad,
      });
      assertClientError(r, `authorization ${bad.slice(0, 20)}`);
    }
  });

  it('still signs a real event afterwards', async () => {
    assert.deepEqual((await rpc(farm.url, token, 'ping')).body, { result: 'pong' });
    const signed = await rpc(farm.url, token, 'sign_event', [
      { kind: 1, content: 'after the storm', tags: [], created_at: 1700000000 },
    ]);
    assert.equal(signed.status, 200);
    assert.ok(verifyEvent(signed.body.result), 'a valid signature');
    assert.equal((await call(farm.url, 'GET', '/healthz/ready')).status, 200);
  });
});
