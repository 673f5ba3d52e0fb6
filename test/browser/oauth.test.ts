// OAuth in a real browser: a third-party app on another port starts the flow with PKCE; the user registers,
// consents, and the app's own page exchanges the code and signs through /api/nostr. Then deny, a bad
// redirect_uri, and revoking from the connected-apps page.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nip19, verifyEvent, type Event } from 'nostr-tools';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pkcePair } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { UI_TIMEOUT_MS, launchBrowser, newContext, screenshot } from './browser.js';
import { startThirdPartyApp, type ThirdPartyApp } from './third-party-app.js';

describe('OAuth in the browser', () => {
  let farm: TestFarm;
  let app: ThirdPartyApp;
  let browser: Browser;
  let user: BrowserContext;
  let appPage: Page;
  let pubkey: string;

  before(async () => {
    [farm, browser] = await Promise.all([startTestFarm('browser-oauth'), launchBrowser()]);
    app = await startThirdPartyApp(farm.url);
    user = await newContext(browser);
  });
  after(async () => {
    await browser?.close();
    await app?.close();
    await farm?.stop();
  });

  it('refuses a bad redirect_uri on the spot, before any login', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const { challenge } = pkcePair();
    for (const redirect of ['http://evil.example/callback', 'javascript:alert(1)', `${app.redirectUri}#fragment`]) {
      const url = new URL('/api/oauth/authorize', farm.url);
      url.search = new URLSearchParams({
        client_id: app.clientId,
        redirect_uri: redirect,
        scope: 'policy:social',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 'st',
      }).toString();
      const res = await page.goto(url.toString());
      assert.equal(res?.status(), 400, redirect);
      assert.equal(new URL(page.url()).origin, farm.url, 'no redirect to the app');
      await page.getByRole('heading', { name: 'This sign-in link is not valid' }).waitFor();
      assert.equal(await page.locator('input[type=password]').count(), 0, 'no login form');
    }
    await screenshot(page, 'oauth-bad-redirect-uri');
    await context.close();
  });

  it('runs the whole flow: app → register → consent → callback → token → sign_event', async () => {
    appPage = await user.newPage();
    await appPage.goto(app.origin);
    await appPage.click('#login');
    // No session: the login page, naming the app, with a way to register.
    await appPage.getByText(`${app.clientId} wants to use your Nostr key`).waitFor();
    assert.equal(new URL(appPage.url()).pathname, '/api/oauth/authorize');
    await screenshot(appPage, 'oauth-login');
    await appPage.click('#register-link');
    await appPage.waitForURL(/\/register\?/);
    const email = `oauth-${Date.now()}@example.com`;
    const password = recordSecret(`browser-pw-${Date.now()}-oauth`);
    await appPage.fill('#email', email);
    await appPage.fill('#password', password);
    await appPage.fill('#confirm_password', password);
    await screenshot(appPage, 'oauth-register');
    await appPage.click('button[type=submit]');

    // Back at the authorize URL, now with a session: the consent page.
    await appPage.locator('#approve').waitFor();
    assert.equal(await appPage.locator('#app-name').textContent(), app.clientId);
    assert.equal(await appPage.locator('#redirect-origin').textContent(), app.origin);
    assert.equal(await appPage.locator('#policy-name').textContent(), 'Social');
    const can = await appPage.locator('#can').textContent();
    assert.match(can ?? '', /short notes \(kind 1\)/);
    assert.match(can ?? '', /read your private messages/, "Keycast's social reads private messages");
    assert.match((await appPage.locator('#cannot').textContent()) ?? '', /Sign any other kind of event/);
    await screenshot(appPage, 'oauth-consent');
    await appPage.click('#approve');

    // The app's callback: code exchanged with the verifier, then sign_event with the access token.
    await appPage.waitForURL(`${app.redirectUri}?**`);
    const callback = new URL(appPage.url());
    recordSecret(callback.searchParams.get('code') ?? '');
    await appPage.locator('#status').filter({ hasText: /\d{3}/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    const tokens = JSON.parse((await appPage.locator('#tokens').textContent()) ?? '{}');
    recordSecret(tokens.access_token);
    recordSecret(tokens.refresh_token);
    recordSecret(new URL(tokens.bunker_url).searchParams.get('secret') ?? '');
    assert.equal(await appPage.locator('#state-check').textContent(), 'state ok');
    assert.equal(
      await appPage.locator('#status').textContent(),
      '200',
      (await appPage.locator('#result').textContent()) ?? '',
    );
    assert.equal(tokens.scope, 'policy:social');
    const event = JSON.parse((await appPage.locator('#result').textContent()) ?? '{}').result as Event;
    assert.equal(event.content, 'hello from the app');
    assert.ok(verifyEvent(event), 'a valid signature');
    await screenshot(appPage, 'oauth-app-callback', [appPage.locator('#tokens')]);

    // The signature is the account's: its page shows the same key.
    const account = await user.newPage();
    await account.goto(`${farm.url}/account`);
    pubkey = (await account.locator('#pubkey').textContent()) ?? '';
    assert.equal(event.pubkey, pubkey);
    assert.equal(await account.locator('#npub').textContent(), nip19.npubEncode(pubkey));
    await account.close();
  });

  it('shows the app, its request count and its activity on the user pages', async () => {
    const page = await user.newPage();
    await page.goto(`${farm.url}/account/apps`);
    const card = page.locator('li.app', { hasText: app.clientId });
    assert.equal(await card.locator('.app-policy').textContent(), 'Social');
    assert.match(
      (await card.textContent()) ?? '',
      new RegExp(`OAuth, returns to ${app.origin.replace(/[.]/g, '\\.')}`),
    );
    // The worker writes activity about once a second: reload until it shows.
    const deadline = Date.now() + UI_TIMEOUT_MS;
    await page.goto(`${farm.url}/account/activity`);
    while ((await page.locator('#activity td', { hasText: 'sign_event: short notes (kind 1)' }).count()) === 0) {
      assert.ok(Date.now() < deadline, 'the signing shows in the activity page');
      await page.waitForTimeout(250);
      await page.reload();
    }
    assert.match((await page.locator('#activity').textContent()) ?? '', new RegExp(app.clientId));
    await screenshot(page, 'account-activity');
    await page.goto(`${farm.url}/account/apps`);
    assert.equal(await page.locator('li.app', { hasText: app.clientId }).locator('.app-count').textContent(), '1');
    await screenshot(page, 'account-apps-oauth');
    await page.close();
  });

  it('sends access_denied (with the state) when the user denies', async () => {
    const page = await user.newPage();
    await page.goto(app.origin);
    await page.click('#login');
    await page.locator('#deny').waitFor();
    await page.click('#deny');
    await page.waitForURL(`${app.redirectUri}?**`);
    assert.equal(new URL(page.url()).searchParams.get('error'), 'access_denied');
    await page.locator('#error').filter({ hasText: 'access_denied' }).waitFor();
    assert.equal(await page.locator('#state-check').textContent(), 'state ok');
    assert.equal(new URL(page.url()).searchParams.get('code'), null);
    await screenshot(page, 'oauth-denied');
    await page.close();
  });

  it('revoking the app in the page makes its next RPC call fail with 403', async () => {
    const page = await user.newPage();
    await page.goto(`${farm.url}/account/apps`);
    const card = page.locator('li.app', { hasText: app.clientId });
    page.once('dialog', (dialog) => void dialog.accept());
    await card.getByRole('button', { name: `Revoke ${app.clientId}` }).click();
    await page.getByText('The app is revoked').waitFor();
    assert.equal(await page.locator('li.app', { hasText: app.clientId }).locator('.badge.revoked').count(), 1);
    await screenshot(page, 'account-apps-revoked');
    await page.close();

    // The app, still open in its tab, tries again.
    await appPage.click('#sign');
    await appPage.locator('#status').filter({ hasText: /\d{3}/ }).waitFor();
    assert.equal(await appPage.locator('#status').textContent(), '403');
  });
});
