// The user's pages in a real browser: the first-visit page, register (password twice, mistakes beside their
// field), the account, a bunker link with copy button and QR code shown once (POST-redirect-GET), a pasted
// nostrconnect:// link previewed before it connects, key export (nsec hidden until revealed, with or without a
// NIP-49 ncryptsec), password change, log out and back in.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, nip19 } from 'nostr-tools';
import { decrypt as ncryptsecDecrypt } from 'nostr-tools/nip49';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { call } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { linkIn, outboxOf, waitForMail } from '../support/mail.js';
import { focusedId, launchBrowser, newContext, screenshot } from './browser.js';

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

  it('a first visit says what Keyfarm is and what to do next; registering asks for the password twice', async () => {
    await visit('/');
    assert.equal(new URL(page.url()).pathname, '/');
    await page.getByRole('heading', { name: 'Your Nostr key, kept safe' }).waitFor();
    assert.match((await page.locator('#next-steps').textContent()) ?? '', /Connect an app.*Back up your key/s);
    await screenshot(page, 'welcome');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.waitForURL(/\/register/);
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.fill('#confirm_password', `${password}-typo`);
    await page.getByRole('button', { name: 'Create account' }).click();
    // The mistake beside its field, focused, in plain words; the email kept, no password sent back.
    const mismatch = page.locator('#confirm_password-error');
    await mismatch.waitFor();
    assert.equal(await mismatch.textContent(), "The two passwords don't match.");
    assert.equal(await page.locator('#confirm_password').getAttribute('aria-invalid'), 'true');
    assert.match(
      (await page.locator('#confirm_password').getAttribute('aria-describedby')) ?? '',
      /confirm_password-error/,
    );
    assert.equal(await focusedId(page), 'confirm_password');
    assert.equal(await page.inputValue('#email'), email);
    assert.equal(await page.inputValue('#password'), '');
    await keepSource();
    await screenshot(page, 'register-mismatch');
  });

  it('registers in the browser and lands on the account page with the pubkey, the npub and the first steps', async () => {
    await page.fill('#password', password);
    await page.fill('#confirm_password', password);
    await keepSource();
    await screenshot(page, 'register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${farm.url}/account`);
    await keepSource();
    pubkey = (await page.locator('#pubkey').textContent()) ?? '';
    assert.match(pubkey, /^[0-9a-f]{64}$/);
    assert.equal(await page.locator('#npub').textContent(), nip19.npubEncode(pubkey));
    await page.getByRole('button', { name: 'Copy npub' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), nip19.npubEncode(pubkey));
    // No app yet: the page says what to do next.
    assert.match((await page.locator('#first-steps').textContent()) ?? '', /Connect an app.*Back up your key/s);
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

  it('creates a bunker connection: the bunker:// link shown once, its copy button and its QR code', async () => {
    await visit('/account/bunker');
    await screenshot(page, 'bunker-form');
    // A mistake keeps what was typed and points at its field.
    await page.fill('#app_name', 'Phone client');
    await page.selectOption('#policy_slug', 'messaging');
    await page.fill('#relays', 'https://not-a-relay.example');
    await page.getByRole('button', { name: 'Create bunker link' }).click();
    await page.locator('#relays-error').waitFor();
    assert.equal(await page.locator('#relays').getAttribute('aria-invalid'), 'true');
    assert.equal(await focusedId(page), 'relays');
    assert.equal(await page.inputValue('#app_name'), 'Phone client');
    assert.equal(await page.inputValue('#policy_slug'), 'messaging');
    await page.fill('#relays', 'wss://relay.example.com\nwss://relay.example.org');
    await page.getByRole('button', { name: 'Create bunker link' }).click();
    const link = page.locator('#bunker-url');
    await link.waitFor();
    // POST-redirect-GET, and the secret is not in the address.
    const shownAt = new URL(page.url());
    assert.equal(shownAt.pathname, '/account/bunker/created');
    const url = new URL((await link.textContent()) ?? '');
    const secret = recordSecret(url.searchParams.get('secret') ?? '');
    assert.ok(!page.url().includes(secret));
    assert.equal(url.protocol, 'bunker:');
    assert.match(url.host, /^[0-9a-f]{64}$/);
    assert.deepEqual(url.searchParams.getAll('relay'), ['wss://relay.example.com', 'wss://relay.example.org']);
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.equal((await page.locator('#bunker-qr svg path').count()) > 0, true, 'a QR code');
    await page.getByRole('button', { name: 'Copy link' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), url.toString());
    await screenshot(page, 'bunker-created', [link]);

    // A reload neither creates a second bunker nor shows the secret again.
    await page.reload();
    await page.locator('#bunker-gone').waitFor();
    assert.ok(!(await page.content()).includes(secret));
    await keepSource();
    const cookie = (await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')!.value;
    const sessions = await call(farm.url, 'GET', '/api/user/sessions', undefined, cookie);
    assert.equal(
      sessions.body.filter((a: { application_name: string }) => a.application_name === 'Phone client').length,
      1,
    );
  });

  it('previews a pasted nostrconnect:// link (name, perms, relays) and connects it only when confirmed', async () => {
    const clientPubkey = getPublicKey(generateSecretKey());
    const secret = recordSecret(`nc-secret-${Date.now()}`);
    const cookie = (await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')!.value;
    const count = async () =>
      (await call(farm.url, 'GET', '/api/user/sessions', undefined, cookie)).body.length as number;
    const before = await count();
    await visit('/account/nostrconnect');
    // A bad link is refused beside the field, and the link is kept to fix.
    await page.fill('#uri', 'nostrconnect://not-a-key?relay=wss://r.example&secret=x');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.locator('#uri-error').waitFor();
    assert.equal(await page.inputValue('#uri'), 'nostrconnect://not-a-key?relay=wss://r.example&secret=x');
    await page.fill(
      '#uri',
      `nostrconnect://${clientPubkey}?relay=${encodeURIComponent('wss://relay.example.com')}&secret=${secret}&name=Web%20Chat&perms=sign_event:1,nip44_encrypt`,
    );
    await screenshot(page, 'nostrconnect-form');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.locator('#preview-perms').waitFor();
    assert.equal(await page.locator('#preview-name').textContent(), 'Web Chat');
    assert.deepEqual(await page.locator('#preview-perms li').allTextContents(), [
      'Sign short notes (kind 1)',
      'Encrypt messages (NIP-44)',
    ]);
    assert.deepEqual(await page.locator('#preview-relays li').allTextContents(), ['wss://relay.example.com']);
    assert.equal(await count(), before, 'nothing connected by the preview');
    await screenshot(page, 'nostrconnect-preview');
    await page.selectOption('#policy_slug', 'messaging');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#delivery').waitFor();
    assert.equal(new URL(page.url()).pathname, '/account/nostrconnect/result');
    // No relay-ingest runs in this farm: the page does not claim the app heard the answer.
    assert.notEqual(await page.locator('#delivery').getAttribute('data-state'), 'delivered');
    await screenshot(page, 'nostrconnect-connected');
    assert.equal(await count(), before + 1);

    await visit('/account/apps');
    const names = await page.locator('li.app .app-name').allTextContents();
    assert.deepEqual(names.sort(), ['Phone client', 'Web Chat']);
    assert.equal(
      await page.locator('li.app', { hasText: 'Phone client' }).locator('.app-policy').textContent(),
      'Messaging',
    );
    assert.equal(
      await page.locator('li.app', { hasText: 'Web Chat' }).locator('.app-policy').textContent(),
      'Messaging',
    );
    assert.match((await page.locator('li.app', { hasText: 'Web Chat' }).textContent()) ?? '', /Nostr Connect/);
    await screenshot(page, 'apps');
    await visit('/account/activity');
    await screenshot(page, 'activity-empty');
  });

  it('exports the key after the password: the nsec hidden until revealed, and an ncryptsec when a passphrase is given twice', async () => {
    // The export needs a confirmed address: the link from the mail (the outbox, with no SMTP_URL) confirms it.
    await visit('/account/export');
    assert.match((await page.locator('#form-error').textContent()) ?? '', /confirm your email address/i);
    const [mail] = await waitForMail(outboxOf(farm.config.DATA_DIR), email);
    const { link } = linkIn(mail!, '/verify-email');
    const url = new URL(link);
    await visit(`${url.pathname}${url.search}`);
    await page.locator('#email-verified').waitFor();
    await visit('/account/export');
    await screenshot(page, 'export-form');
    const passphrase = recordSecret(`export-passphrase-${Date.now()}`);
    await page.fill('#password', 'not my password at all');
    await page.fill('#passphrase', passphrase);
    await page.fill('#confirm_passphrase', passphrase);
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.locator('#password-error').filter({ hasText: 'That is not your password.' }).waitFor();
    assert.equal(await focusedId(page), 'password');

    await page.fill('#password', password);
    await page.fill('#passphrase', passphrase);
    await page.fill('#confirm_passphrase', `${passphrase}x`);
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.locator('#confirm_passphrase-error').filter({ hasText: "The two passphrases don't match." }).waitFor();
    assert.equal(await page.locator('#nsec').count(), 0, 'no key for a mismatched passphrase');

    await page.fill('#password', password);
    await page.fill('#passphrase', passphrase);
    await page.fill('#confirm_passphrase', passphrase);
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.locator('#ncryptsec').waitFor({ timeout: 60_000 });
    // The nsec is in the page but not shown until the user asks.
    assert.equal(await page.locator('#nsec').isVisible(), false);
    await screenshot(page, 'export-result-hidden', [page.locator('#ncryptsec')]);
    await page.getByText('Show the nsec').click();
    assert.equal(await page.locator('#nsec').isVisible(), true);
    const nsec = recordSecret((await page.locator('#nsec').textContent()) ?? '');
    const ncryptsec = recordSecret((await page.locator('#ncryptsec').textContent()) ?? '');
    const decoded = nip19.decode(nsec);
    assert.equal(decoded.type, 'nsec');
    const secretKey = decoded.data as Uint8Array;
    recordSecret(bytesToHex(secretKey));
    assert.equal(getPublicKey(secretKey), pubkey);
    assert.match(ncryptsec, /^ncryptsec1/);
    assert.equal(bytesToHex(ncryptsecDecrypt(ncryptsec, passphrase)), bytesToHex(secretKey));
    await page.getByRole('button', { name: 'Copy nsec' }).click();
    await page.locator('#nsec-status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), nsec);
    await screenshot(page, 'export-result', [page.locator('#nsec'), page.locator('#ncryptsec')]);

    // The nsec alone, without a passphrase.
    await visit('/account/export');
    await page.fill('#password', password);
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.locator('#nsec-reveal').waitFor();
    assert.equal(await page.locator('#ncryptsec').count(), 0);
    assert.equal(await page.locator('#nsec').textContent(), nsec);
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
    await page.locator('#confirm_password-error').filter({ hasText: "The two passwords don't match." }).waitFor();
    assert.equal(await focusedId(page), 'confirm_password');
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
    await page.locator('#form-error').filter({ hasText: 'The email or the password is wrong.' }).waitFor();
    assert.equal(await page.inputValue('#email'), email);
    await screenshot(page, 'login-wrong-password');
    await page.fill('#password', newPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${farm.url}/account`);
    assert.equal(await page.locator('#pubkey').textContent(), pubkey);
    recordSecret((await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')!.value);
  });
});
