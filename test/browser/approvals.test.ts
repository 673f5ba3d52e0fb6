// Approval per request end to end: nostr-tools' BunkerSigner asks for a signature its policy does not
// allow, its onauth callback receives the approval URL, the user opens it in Chromium (signed out: the
// login comes first and leads back), reads the request in plain words, approves once, and the pending
// signEvent resolves with a valid signature over the relays. The account page lists what still waits.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, verifyEvent } from 'nostr-tools';
import { BunkerSigner, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool';
import type { Browser } from 'playwright-core';
import WebSocket from 'ws';
import { call, registerUser } from '../support/client.js';
import { freePort } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { FAST_RELAY } from '../support/bunker.js';
import { launchBrowser, newContext, screenshot } from './browser.js';

useWebSocketImplementation(WebSocket);

describe('approval per request in the browser', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let browser: Browser;
  let pool: SimplePool;
  let signer: BunkerSigner | undefined;

  before(async () => {
    relay = await startTestRelay();
    // The approval URL is built on PUBLIC_URL: the farm's own address here.
    const port = await freePort();
    [farm, browser] = await Promise.all([
      startTestFarm(
        'browser-approvals',
        { BUNKER_RELAYS: relay.url, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` },
        { api: true, workers: true, relayIngest: { relay: FAST_RELAY, publishRetryDelayMs: 100 } },
      ),
      launchBrowser(),
    ]);
    pool = new SimplePool();
  });
  after(async () => {
    await signer?.close().catch(() => undefined);
    pool?.destroy();
    await browser?.close();
    await farm?.stop();
    await relay?.stop();
  });

  it('onauth opens the approval page; after logging in the user approves once and signEvent resolves', async () => {
    const user = await registerUser(farm.url);
    const created = await call(
      farm.url,
      'POST',
      '/api/user/bunker/create',
      { app_name: 'Chirp <script>' },
      user.session,
    );
    assert.equal(created.status, 201);
    // The user's own policy that asks for what it does not allow, made and given to the app through the API.
    const policy = await call(
      farm.url,
      'POST',
      '/api/user/policies',
      { name: 'Ask', description: 'Notes; ask for the rest', permissions: { allowed_kinds: [1], ask: true } },
      user.session,
    );
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    assert.equal(policy.body.permissions.ask, true);
    const moved = await call(
      farm.url,
      'PATCH',
      `/api/user/authorizations/${created.body.authorization_id}`,
      { policy: policy.body.slug },
      user.session,
    );
    assert.ok(moved.status < 300, JSON.stringify(moved.body));
    const bp = (await parseBunkerInput(created.body.bunker_url)) as BunkerPointer;
    recordSecret(bp.secret!);

    const clientSk = generateSecretKey();
    recordSecret(bytesToHex(clientSk));
    let authUrl!: (url: string) => void;
    const onauthCalled = new Promise<string>((resolve) => (authUrl = resolve));
    signer = BunkerSigner.fromBunker(clientSk, bp, { pool, onauth: (url) => authUrl(url) });
    await signer.connect();

    const content = recordSecret(`Zap me at <img src=x onerror=alert(1)> ${randomBytes(6).toString('hex')}`);
    const signing = signer.signEvent({ kind: 7, content, tags: [], created_at: Math.floor(Date.now() / 1000) });
    const url = await onauthCalled;

    // A fresh browser, signed out, opens the URL the app was given.
    const context = await newContext(browser);
    const dialogs: string[] = [];
    const page = await context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(url);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.fill('#email', user.email);
    await page.fill('#password', user.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(url);

    assert.equal(await page.locator('#approval-app').textContent(), 'Chirp <script>');
    assert.equal(await page.locator('#approval-what').textContent(), 'Sign reactions (kind 7) in your name');
    assert.equal(await page.locator('#approval-content').textContent(), content);
    assert.equal(await page.locator('#approval-content img').count(), 0, 'the content is text, not markup');
    await screenshot(page, 'approval-request');

    // The account page lists it, with its age.
    const account = await context.newPage();
    await account.goto(`${farm.url}/account`);
    const item = account.locator('#pending-approvals li');
    assert.equal(await item.count(), 1);
    assert.match(
      (await item.textContent()) ?? '',
      /Chirp <script>: Sign reactions \(kind 7\) in your name\s+asked \d+ s ago/,
    );
    await account.close();

    await page.getByRole('button', { name: 'Approve once' }).click();
    await page.locator('#approval-outcome[data-outcome="approved"]').waitFor();
    await screenshot(page, 'approval-approved');

    const signed = await Promise.race([
      signing,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no signature in 15 s')), 15_000)),
    ]);
    assert.equal(signed.kind, 7);
    assert.equal(signed.content, content);
    assert.equal(signed.pubkey, user.pubkey);
    assert.ok(verifyEvent(signed));
    assert.deepEqual(dialogs, [], 'no script of the request ran');

    await page.goto(`${farm.url}/account`);
    assert.equal(await page.locator('#pending-approvals').count(), 0, 'nothing waits any more');
    await context.close();
  });
});
