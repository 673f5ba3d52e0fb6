// Bull Board at /admin/queues in the browser: 401 without the admin password; with it, every shard queue and
// its job counts; read-only by default (actions refused with 405), writable when ADMIN_QUEUES_READ_ONLY=false.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import type { Browser, Page } from 'playwright-core';
import { createBullConnection } from '../../shared/redis.js';
import { shardNamesOf, suiteRedisTarget } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { launchBrowser, newContext, screenshot } from './browser.js';

const SHARDS = 8;
const BUSY_SHARD = 5;

const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;

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
  const redis = createBullConnection(suiteRedisTarget());
  let busy: Queue;

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
    const names = shardNamesOf(readOnly.config);
    busy = new Queue(names.queue(BUSY_SHARD), { connection: redis, prefix: names.queuePrefix(BUSY_SHARD) });
    await busy.add('probe', { n: 1 });
    await busy.add('probe', { n: 2 });
    await busy.add('probe', { n: 3 }, { delay: 3_600_000 });
  });
  after(async () => {
    await busy?.obliterate({ force: true }).catch(() => undefined);
    await busy?.close();
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
    const listed = new Set(await sidebar.allTextContents());
    assert.deepEqual([...listed].sort(), Array.from({ length: SHARDS }, (_, i) => `shard-${i}`).sort());
    // Each shard's card shows its job total: 3 on the busy shard, 0 on every other.
    await page.getByText('3 Jobs', { exact: true }).waitFor();
    assert.equal(await page.getByText('3 Jobs', { exact: true }).count(), 1);
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
    assert.equal(counts.waiting, 2);
    assert.equal(counts.delayed, 1);
    assert.ok(queues.every((q) => q.readOnlyMode));

    // The operators' links: the metrics, from the board's menu.
    await page.locator('ul[class^="actions"] li').last().click();
    const metrics = page.locator('a[href="/api/metrics"]');
    await metrics.waitFor();
    assert.equal((await metrics.textContent())?.trim(), 'Prometheus metrics');
    await page.keyboard.press('Escape');

    // Read-only: the queue says so and every action is refused.
    assert.match(await openQueueInfo(page, readOnly.url, BUSY_SHARD), /Read-only Yes/);
    await screenshot(page, 'bull-board-queue-read-only');
    const pause = await context.request.put(`${readOnly.url}/admin/queues/api/queues/shard-${BUSY_SHARD}/pause`);
    assert.equal(pause.status(), 405);
    assert.equal(await busy.isPaused(), false);
    await context.close();
  });

  it('acts on queues when ADMIN_QUEUES_READ_ONLY=false, but never for another site', async () => {
    const password = writable.env.ADMIN_PASSWORD!;
    const names = shardNamesOf(writable.config);
    const queue = new Queue(names.queue(2), { connection: redis, prefix: names.queuePrefix(2) });
    try {
      const headers = { authorization: basic(password) };
      const url = `${writable.url}/admin/queues/api/queues/shard-2`;
      const crossSite = await fetch(`${url}/pause`, {
        method: 'PUT',
        headers: { ...headers, origin: 'http://evil.example' },
      });
      assert.equal(crossSite.status, 403);
      assert.equal(await queue.isPaused(), false);
      const paused = await fetch(`${url}/pause`, { method: 'PUT', headers });
      assert.ok(paused.status < 300, `pause answered ${paused.status}`);
      assert.equal(await queue.isPaused(), true);
      assert.ok((await fetch(`${url}/resume`, { method: 'PUT', headers })).status < 300);
      assert.equal(await queue.isPaused(), false);

      const context = await newContext(browser, { httpCredentials: { username: 'operator', password } });
      const page = await context.newPage();
      assert.match(await openQueueInfo(page, writable.url, 2), /Read-only No/);
      await screenshot(page, 'bull-board-queue-writable');
      await context.close();
    } finally {
      await queue.close();
    }
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
