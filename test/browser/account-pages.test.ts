// The user's pages in a real browser: register, the account, a bunker link with copy button and QR code, a
// pasted nostrconnect:// link, key export (nsec and NIP-49 ncryptsec), password change, log out and back in.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, nip19 } from 'nostr-tools';
import { decrypt as ncryptsecDecrypt } from 'nostr-tools/nip49';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { launchBrowser, newContext, screenshot } from './browser.js';

describe('the user pages in the browser', () => {
  let farm: TestFarm;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const email = `pages-${Date.now()}@example.com`;
  const password = recordSecret(`first-password-${Date.now()}`);
  const newPassword = recordSecret(`second-password-${Date.now()}`);
  let pubkey = '';
  /** Every page's HTML, to check that no secret the user did not ask for is in any of them. */
  const sources: { url: string; html: string }[] = [];

  const visit = async (path: string) => {
    await page.goto(`${farm.url}${path}`);
    await keepSource();
  };
  const keepSource = async () => sources.push({ url: page.url(), html: await page.content() });

  before(async () => {
    [farm, browser] = await Promise.all([startTestFarm('browser-pages'), launchBrowser()]);
    context = await newContext(browser);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: farm.url });
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  it('registers in the browser and lands on the account page with the pubkey and npub', async () => {
    await visit('/');
    assert.equal(new URL(page.url()).pathname, '/login');
    await screenshot(page, 'login');
    await page.getByRole('link', { name: 'Create one' }).click();
    await page.fill('#email', email);
    await page.fill('#password', password);
    await keepSource();
    await screenshot(page, 'register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${farm.url}/account`);
    await keepSource();
    pubkey = (await page.locator('#pubkey').textContent()) ?? '';
    assert.match(pubkey, /^[0-9a-f]{64}$/);
    assert.equal(await page.locator('#npub').textContent(), nip19.npubEncode(pubkey));
    const cookies = await context.cookies(farm.url);
    const session = cookies.find((c) => c.name === 'keyfarm_session');
    assert.ok(session, 'a session cookie');
    recordSecret(session.value);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    // A user's pages do not point at the operators' tools (Bull Board, metrics).
    assert.equal(await page.locator('a[href^="/admin"], a[href^="/api/metrics"]').count(), 0);
    await screenshot(page, 'account');
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'account-phone');
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  it('creates a bunker connection: the bunker:// link, its copy button and its QR code', async () => {
    await visit('/account/bunker');
    await screenshot(page, 'bunker-form');
    await page.fill('#app_name', 'Phone client');
    await page.selectOption('#policy_slug', 'messaging');
    await page.fill('#relays', 'wss://relay.example.com\nwss://relay.example.org');
    await page.getByRole('button', { name: 'Create bunker link' }).click();
    const link = page.locator('#bunker-url');
    await link.waitFor();
    const url = new URL((await link.textContent()) ?? '');
    recordSecret(url.searchParams.get('secret') ?? '');
    assert.equal(url.protocol, 'bunker:');
    assert.match(url.host, /^[0-9a-f]{64}$/);
    assert.deepEqual(url.searchParams.getAll('relay'), ['wss://relay.example.com', 'wss://relay.example.org']);
    assert.match(url.searchParams.get('secret') ?? '', /^[0-9a-f]{64}$/);
    assert.equal(await page.locator('#bunker-qr svg path').count() > 0, true, 'a QR code');
    await page.getByRole('button', { name: 'Copy link' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), url.toString());
    await screenshot(page, 'bunker-created', [link]);
  });

  it('connects a pasted nostrconnect:// link and lists it with the bunker under connected apps', async () => {
    const clientPubkey = getPublicKey(generateSecretKey());
    const secret = recordSecret(`nc-secret-${Date.now()}`);
    await visit('/account/nostrconnect');
    await page.fill('#uri', `nostrconnect://${clientPubkey}?relay=${encodeURIComponent('wss://relay.example.com')}&secret=${secret}&name=Web%20Chat`);
    await page.fill('#app_name', 'Web Chat');
    await screenshot(page, 'nostrconnect-form');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#connected').waitFor();
    await screenshot(page, 'nostrconnect-connected');
    // A bad link is refused on the form.
    await page.fill('#uri', 'nostrconnect://not-a-key?relay=wss://r.example&secret=x');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#form-error').waitFor();

    await visit('/account/apps');
    const names = await page.locator('li.app .app-name').allTextContents();
    assert.deepEqual(names.sort(), ['Phone client', 'Web Chat']);
    assert.equal(await page.locator('li.app', { hasText: 'Phone client' }).locator('.app-policy').textContent(), 'Messaging');
    assert.match((await page.locator('li.app', { hasText: 'Web Chat' }).textContent()) ?? '', /Nostr Connect/);
    await screenshot(page, 'apps');
    await visit('/account/activity');
    await screenshot(page, 'activity-empty');
  });

  it('exports the key after the password: an nsec of the account and an ncryptsec that opens with the passphrase', async () => {
    await visit('/account/export');
    await screenshot(page, 'export-form');
    const passphrase = recordSecret(`export-passphrase-${Date.now()}`);
    await page.fill('#password', 'not my password at all');
    await page.fill('#passphrase', passphrase);
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.locator('#form-error').filter({ hasText: 'That is not your password.' }).waitFor();

    await page.fill('#password', password);
    await page.fill('#passphrase', passphrase);
    await page.getByRole('button', { name: 'Show my key' }).click();
    const nsec = recordSecret((await page.locator('#nsec').textContent({ timeout: 60_000 })) ?? '');
    const ncryptsec = recordSecret((await page.locator('#ncryptsec').textContent()) ?? '');
    const decoded = nip19.decode(nsec);
    assert.equal(decoded.type, 'nsec');
    const secretKey = decoded.data as Uint8Array;
    recordSecret(bytesToHex(secretKey));
    assert.equal(getPublicKey(secretKey), pubkey);
    assert.match(ncryptsec, /^ncryptsec1/);
    assert.equal(bytesToHex(ncryptsecDecrypt(ncryptsec, passphrase)), bytesToHex(secretKey));
    await screenshot(page, 'export-result', [page.locator('#nsec'), page.locator('#ncryptsec')]);
  });

  it('keeps secrets out of the pages: no password and no session token in any page source', async () => {
    const session = (await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')!.value;
    for (const { url, html } of sources) {
      assert.ok(!html.includes(session), `session token in ${url}`);
      assert.ok(!html.includes(password), `password in ${url}`);
    }
    assert.ok(sources.length >= 8);
  });

  it('changes the password: the old one stops working, the new one logs in', async () => {
    await visit('/account/password');
    await page.fill('#current_password', password);
    await page.fill('#new_password', newPassword);
    await page.fill('#confirm_password', `${newPassword}-typo`);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#form-error').filter({ hasText: 'the two new passwords differ' }).waitFor();
    await page.fill('#current_password', password);
    await page.fill('#new_password', newPassword);
    await page.fill('#confirm_password', newPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#changed').waitFor();
    await screenshot(page, 'password-changed');

    // Log out from the navigation; the account page then asks for a login.
    await page.locator('#logout').click();
    await page.waitForURL(`${farm.url}/login`);
    await visit('/account');
    assert.equal(new URL(page.url()).pathname, '/login');

    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#form-error').filter({ hasText: 'wrong email or password' }).waitFor();
    await screenshot(page, 'login-wrong-password');
    await page.fill('#password', newPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${farm.url}/account`);
    assert.equal(await page.locator('#pubkey').textContent(), pubkey);
    recordSecret((await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')!.value);
  });
});
