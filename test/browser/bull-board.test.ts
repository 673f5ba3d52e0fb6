// Bull Board at /admin/queues in the browser: 401 without the admin password; with it, every shard queue and
// its job counts, a job's sealed calls and results shown as [sealed]; read-only by default (actions refused
// with 405), and when ADMIN_QUEUES_READ_ONLY=false only finished jobs may be cleaned: every action on waiting
// or running jobs stays refused, so the shard's queue and item count stay whole.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { PayloadSealer, SEALED_PREFIX } from '../../shared/farm/payload-seal.js';
import { sealReply, sealRpcJob } from '../../shared/farm/rpc-sealing.js';
import { shardNamesOf, suiteRedis } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { type FixtureJob, ShardQueueFixture } from '../support/shard-queue-fixture.js';
import { launchBrowser, newContext, screenshot } from './browser.js';

const SHARDS = 8;
const BUSY_SHARD = 5;
const CLEANED_SHARD = 2;

const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;
const sealer = new PayloadSealer(randomBytes(32));

/** An RPC job of one sign_event call, sealed as the ingress seals it. */
function rpcJob(id: string): FixtureJob {
  const call = { method: 'sign_event' as const, event: { kind: 1, content: 'hello', tags: [], created_at: 1 } };
  const item = { id: `${id}.0`, traceId: `t-${id}`, authorizationId: 'a', keyId: 'k', pubkey: 'a'.repeat(64), call };
  return { id, type: 'rpc', data: sealRpcJob(sealer, id, 'api-1', 'http', [item]) };
}

async function openQueueInfo(page: Page, base: string, shard: number): Promise<string> {
  await page.goto(`${base}/admin/queues/queue/shard-${shard}`);
  await page.getByRole('button', { name: 'Queue info' }).click();
  await page.getByText('Retries allowed', { exact: true }).waitFor();
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, as a user reads it.
  return (await page.locator('body').innerText()).replace(/\s+/g, ' ');
}

describe('Bull Board for operators', () => {
  let readOnly: TestFarm;
  let writable: TestFarm;
  let browser: Browser;
  const redis = suiteRedis();
  let busy: ShardQueueFixture;

  before(async () => {
    // The api alone: no worker takes the jobs, so the counts stay as the test made them.
    [readOnly, writable, browser] = await Promise.all([
      startTestFarm('browser-bull-board', { SHARD_COUNT: String(SHARDS) }, { api: true }),
      startTestFarm(
        'browser-bull-board-rw',
        { SHARD_COUNT: String(SHARDS), ADMIN_QUEUES_READ_ONLY: 'false' },
        { api: true },
      ),
      launchBrowser(),
    ]);
    // The busy shard: two jobs waiting, one running (read by a worker member), one completed, one failed.
    const names = shardNamesOf(readOnly.config);
    busy = new ShardQueueFixture(redis, names.queuePrefix(BUSY_SHARD));
    for (const id of ['done', 'broken', 'running', 'next-1', 'next-2']) await busy.enqueue(rpcJob(id));
    const [done, broken] = await busy.take('worker-a', 3);
    await busy.complete(done!, { reply: sealReply(sealer, 'done', [{ id: 'done.0', ok: true, result: 'sig' }]) });
    await busy.complete(broken!, {
      reply: { jobId: 'broken', results: [{ id: 'broken.0', ok: false, status: 503, error: 'worker failed' }] },
      failedReason: 'worker failed',
      attempts: 3,
    });
  });
  after(async () => {
    redis.disconnect();
    await browser?.close();
    await readOnly?.stop();
    await writable?.stop();
  });

  it('answers 401 without the admin password, and with a wrong one', async () => {
    // A browser without the password gets the challenge (it would ask the user; headless it gives up).
    const context = await newContext(browser);
    const page = await context.newPage();
    await assert.rejects(page.goto(`${readOnly.url}/admin/queues`), /ERR_INVALID_AUTH_CREDENTIALS/);
    const res = await context.request.get(`${readOnly.url}/admin/queues`);
    assert.equal(res.status(), 401);
    assert.match(res.headers()['www-authenticate'] ?? '', /^Basic /);
    assert.equal((await res.json()).error, 'the admin password is required');
    await context.close();
    const wrong = await fetch(`${readOnly.url}/admin/queues/api/queues`, {
      headers: { authorization: basic('not-the-password') },
    });
    assert.equal(wrong.status, 401);
  });

  it('lists every shard queue with its counts, read-only, with a link to the metrics', async () => {
    const password = readOnly.env.ADMIN_PASSWORD!;
    const context = await newContext(browser, { httpCredentials: { username: 'operator', password } });
    const page = await context.newPage();
    await page.goto(`${readOnly.url}/admin/queues`);
    const sidebar = page.locator('a[href^="/admin/queues/queue/"]');
    await page
      .locator(`a[href="/admin/queues/queue/shard-${SHARDS - 1}"]`)
      .first()
      .waitFor();
    // The queue links (a queue with running or failed jobs also links to those, with a query).
    const hrefs = await sidebar.evaluateAll((links) => links.map((a) => a.getAttribute('href') ?? ''));
    const listed = new Set(hrefs.filter((h) => !h.includes('?')).map((h) => h.slice('/admin/queues/queue/'.length)));
    assert.deepEqual([...listed].sort(), Array.from({ length: SHARDS }, (_, i) => `shard-${i}`).sort());
    // Each shard's card shows its job total: 5 on the busy shard, 0 on every other.
    await page.getByText('5 Jobs', { exact: true }).waitFor();
    assert.equal(await page.getByText('5 Jobs', { exact: true }).count(), 1);
    assert.equal(await page.getByText('0 Jobs', { exact: true }).count(), SHARDS - 1);
    await screenshot(page, 'bull-board-queues');

    // The same counts from the board's API, which the page reads.
    const api = await context.request.get(`${readOnly.url}/admin/queues/api/queues`);
    const queues = (await api.json()).queues as {
      name: string;
      counts: Record<string, number>;
      readOnlyMode: boolean;
    }[];
    assert.equal(queues.length, SHARDS);
    const counts = queues.find((q) => q.name === `shard-${BUSY_SHARD}`)!.counts;
    assert.deepEqual(counts, { waiting: 2, active: 1, completed: 1, failed: 1 });
    assert.ok(queues.every((q) => q.readOnlyMode));

    // The operators' links: the metrics, from the board's menu.
    await page.locator('ul[class^="actions"] li').last().click();
    const metrics = page.locator('a[href="/api/metrics"]');
    await metrics.waitFor();
    assert.equal((await metrics.textContent())?.trim(), 'Prometheus metrics');
    await page.keyboard.press('Escape');

    // A finished job's page: its calls and result only as [sealed].
    await page.goto(`${readOnly.url}/admin/queues/queue/shard-${BUSY_SHARD}/done`);
    await page.getByText('sealedResults').waitFor();
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, as a user reads it.
    const shown = await page.locator('body').innerText();
    assert.match(shown, /calls:\s*"\[sealed\]"/);
    assert.match(shown, /sealedResults:\s*"\[sealed\]"/);
    assert.ok(!shown.includes(SEALED_PREFIX), 'no ciphertext on the page');
    await screenshot(page, 'bull-board-job-sealed');

    // Read-only: the queue says so and every action is refused.
    assert.match(await openQueueInfo(page, readOnly.url, BUSY_SHARD), /Read-only Yes/);
    await screenshot(page, 'bull-board-queue-read-only');
    const queueApi = `${readOnly.url}/admin/queues/api/queues/shard-${BUSY_SHARD}`;
    for (const action of ['pause', 'clean/completed', 'clean/wait', 'retry/failed']) {
      const res = await context.request.put(`${queueApi}/${action}`);
      assert.equal(res.status(), 405, action);
    }
    assert.equal((await context.request.put(`${queueApi}/done/clean`)).status(), 405);
    assert.equal(await redis.exists(busy.recordKey('done')), 1, 'the finished record stays');
    assert.deepEqual(
      (
        (await (await context.request.get(`${readOnly.url}/admin/queues/api/queues`)).json()).queues as {
          name: string;
          counts: unknown;
        }[]
      ).find((q) => q.name === `shard-${BUSY_SHARD}`)!.counts,
      { waiting: 2, active: 1, completed: 1, failed: 1 },
    );
    await context.close();
  });

  it('cleans finished jobs when ADMIN_QUEUES_READ_ONLY=false, never for another site, and refuses the rest', async () => {
    const password = writable.env.ADMIN_PASSWORD!;
    const shard = new ShardQueueFixture(redis, shardNamesOf(writable.config).queuePrefix(CLEANED_SHARD));
    for (const id of ['old', 'broken', 'waiting']) await shard.enqueue(rpcJob(id));
    const [old, broken] = await shard.take('worker-b', 2);
    await shard.complete(old!, { reply: { jobId: 'old', results: [] }, finishedOn: Date.now() - 60_000 });
    await shard.complete(broken!, { reply: { jobId: 'broken', results: [] }, failedReason: 'worker failed' });
    const state = async () => ({ length: await redis.xlen(shard.stream), count: await shard.count() });
    const queued = await state();
    assert.deepEqual(queued, { length: 1, count: 1 });

    const headers = { authorization: basic(password) };
    const url = `${writable.url}/admin/queues/api/queues/shard-${CLEANED_SHARD}`;
    const crossSite = await fetch(`${url}/clean/completed`, {
      method: 'PUT',
      headers: { ...headers, origin: 'http://evil.example' },
    });
    assert.equal(crossSite.status, 403);
    assert.equal(await redis.exists(shard.recordKey('old')), 1, 'another site cleaned nothing');

    // What would corrupt the queue or its count is refused, with the reason.
    const refusals = ['clean/wait', 'clean/active', 'clean/delayed', 'pause', 'empty', 'promote', 'retry/failed'];
    for (const action of [...refusals, 'waiting/clean', 'broken/retry']) {
      const res = await fetch(`${url}/${action}`, { method: 'PUT', headers });
      assert.equal(res.status, 405, action);
      assert.match(((await res.json()) as { message: string }).message, / refused: /, action);
    }
    const added = await fetch(`${url}/add`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'rpc', data: { type: 'rpc', items: [] }, options: {} }),
    });
    assert.equal(added.status, 405, 'adding a job is refused');
    assert.deepEqual(await state(), queued, 'the queue and its count are whole');

    const cleaned = await fetch(`${url}/clean/completed`, { method: 'PUT', headers });
    assert.equal(cleaned.status, 200);
    assert.equal(await redis.exists(shard.recordKey('old')), 0, 'the completed record is gone');
    assert.equal(await redis.exists(shard.recordKey('broken')), 1, 'the failed one stays');
    assert.deepEqual(await state(), queued);

    const context = await newContext(browser, { httpCredentials: { username: 'operator', password } });
    const page = await context.newPage();
    assert.match(await openQueueInfo(page, writable.url, CLEANED_SHARD), /Read-only No/);
    await screenshot(page, 'bull-board-queue-writable');
    await context.close();
  });

  it('counts wrong admin passwords like failed logins: five, then 429 with Retry-After even for the right one', async () => {
    const url = `${writable.url}/admin/queues/api/queues`;
    const status = async (password?: string) => {
      const res = await fetch(url, password === undefined ? {} : { headers: { authorization: basic(password) } });
      return { status: res.status, retryAfter: res.headers.get('retry-after') };
    };
    assert.equal((await status(writable.env.ADMIN_PASSWORD!)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await status()).status, 401, 'no credentials: not counted');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await status(`wrong guess ${i}`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    const locked = await status(writable.env.ADMIN_PASSWORD!);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.retryAfter) > 0);
  });
});
