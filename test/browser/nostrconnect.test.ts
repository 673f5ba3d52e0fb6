// A pasted nostrconnect:// link end to end: nostr-tools' BunkerSigner waits on the test relay as a real client
// does, the user previews the link in the browser (name, perms, relays) and confirms it, and the result page
// says whether relay-ingest got the connect reply onto a relay, for a relay that takes it and one that is down.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateSecretKey, getPublicKey } from 'nostr-tools';
import { BunkerSigner, createNostrConnectURI } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import type { Browser, BrowserContext } from 'playwright-core';
import { registerUser } from '../support/client.js';
import { freePort } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { launchBrowser, newContext, screenshot, UI_TIMEOUT_MS } from './browser.js';
import { FAST_RELAY } from '../support/bunker.js';

useWebSocketImplementation(WebSocket);

describe('nostrconnect:// in the browser', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let browser: Browser;
  let context: BrowserContext;
  let user: Awaited<ReturnType<typeof registerUser>>;
  const pools: SimplePool[] = [];

  before(async () => {
    relay = await startTestRelay();
    [farm, browser] = await Promise.all([
      startTestFarm(
        'browser-nostrconnect',
        { BUNKER_RELAYS: relay.url, USER_RELAYS_ALLOW_WS: 'true', USER_RELAYS_ALLOW_PRIVATE: 'true' },
        { api: true, workers: true, relayIngest: { relay: FAST_RELAY, publishRetryDelayMs: 100 } },
      ),
      launchBrowser(),
    ]);
    user = await registerUser(farm.url);
    context = await newContext(browser);
    await context.addCookies([{ name: 'keyfarm_session', value: user.session, url: farm.url }]);
  });
  after(async () => {
    for (const p of pools) p.destroy();
    await browser?.close();
    await farm?.stop();
    await relay?.stop();
  });

  /** Pastes the link, checks the preview, confirms; returns the result page. */
  async function pasteAndConfirm(uri: string, expect: { name: string; perms: string[]; relays: string[] }) {
    const page = await context.newPage();
    await page.goto(`${farm.url}/account/nostrconnect`);
    await page.fill('#uri', uri);
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.locator('#preview-perms').waitFor();
    assert.equal(await page.locator('#preview-name').textContent(), expect.name);
    assert.deepEqual(await page.locator('#preview-perms li').allTextContents(), expect.perms);
    assert.deepEqual(await page.locator('#preview-relays li').allTextContents(), expect.relays);
    await page.selectOption('#policy_slug', 'full');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.waitForURL(/\/account\/nostrconnect\/result\?authorization=/);
    return page;
  }

  it('says the connect reply was delivered, and the waiting BunkerSigner connects and signs with the user key', async () => {
    const clientSk = generateSecretKey();
    const secret = recordSecret(`nc-browser-${Date.now()}`);
    const uri = createNostrConnectURI({
      clientPubkey: getPublicKey(clientSk),
      relays: [relay.url],
      secret,
      name: 'Paste App',
      perms: ['sign_event:1', 'nip44_encrypt'],
    });
    const pool = new SimplePool();
    pools.push(pool);
    const pending = BunkerSigner.fromURI(clientSk, uri, { pool }, 20_000);
    const listening = Date.now() + 5000;
    while (!relay.stats.reqs.some(([, filters]) => filters.some((f) => f['#p']?.includes(getPublicKey(clientSk))))) {
      assert.ok(Date.now() < listening, 'the app listens on its relay');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const page = await pasteAndConfirm(uri, {
      name: 'Paste App',
      perms: ['Sign short notes (kind 1)', 'Encrypt messages (NIP-44)'],
      relays: [relay.url],
    });
    // The page refreshes by itself while the reply is on its way.
    await page.locator('#delivery[data-state="delivered"]').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match((await page.locator('#delivery').textContent()) ?? '', /Paste App is connected: 1 of 1 relays/);
    await screenshot(page, 'nostrconnect-delivered');

    const signer = await pending;
    try {
      assert.equal(await signer.getPublicKey(), user.pubkey);
      const event = await signer.signEvent({
        kind: 1,
        content: 'pasted and previewed',
        tags: [],
        created_at: Math.floor(Date.now() / 1000),
      });
      assert.equal(event.pubkey, user.pubkey);
    } finally {
      await signer.close();
    }

    // The result of someone else's connection is nobody else's business.
    const stranger = await registerUser(farm.url);
    const other = await newContext(browser);
    await other.addCookies([{ name: 'keyfarm_session', value: stranger.session, url: farm.url }]);
    const otherPage = await other.newPage();
    const res = await otherPage.goto(page.url());
    assert.equal(res?.status(), 404);
    assert.equal(await otherPage.locator('#delivery').count(), 0);
    await other.close();
    await page.close();
  });

  it('says the reply was not delivered when no relay of the link takes it', async () => {
    const down = `ws://127.0.0.1:${await freePort()}`;
    const clientSk = generateSecretKey();
    const secret = recordSecret(`nc-browser-down-${Date.now()}`);
    const uri = createNostrConnectURI({
      clientPubkey: getPublicKey(clientSk),
      relays: [down],
      secret,
      name: 'Lonely App',
    });
    const page = await pasteAndConfirm(uri, { name: 'Lonely App', perms: [], relays: [down] });
    await page.locator('#delivery[data-state="failed"]').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match((await page.locator('#delivery').textContent()) ?? '', /none of its 1 relays took/);
    await screenshot(page, 'nostrconnect-not-delivered');
    await page.close();
  });
});
