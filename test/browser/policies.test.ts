// Custom policies in a real browser: make one on the policies page (a mistake shown beside its field), then
// move a connected app to it from the connected-apps page; the app's very next request obeys it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { UI_TIMEOUT_MS, launchBrowser, newContext, screenshot } from './browser.js';
import { startThirdPartyApp, type ThirdPartyApp } from './third-party-app.js';

const note = (kind: number) => ({ kind, content: 'hi', tags: [], created_at: Math.floor(Date.now() / 1000) });

describe('custom policies in the browser', () => {
  let farm: TestFarm;
  let browser: Browser;
  let page: Page;
  let user: Awaited<ReturnType<typeof registerUser>>;
  let thirdParty: ThirdPartyApp;

  before(async () => {
    [farm, browser] = await Promise.all([startTestFarm('browser-policies'), launchBrowser()]);
    user = await registerUser(farm.url);
    page = await (await newContext(browser)).newPage();
    await page.goto(`${farm.url}/login`);
    await page.fill('#email', user.email);
    await page.fill('#password', user.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${farm.url}/account`);
  });
  after(async () => {
    await browser?.close();
    await thirdParty?.close();
    await farm?.stop();
  });

  it('creates a policy on the policies page, with a mistake shown beside its field first', async () => {
    await page.locator('nav.main').getByRole('link', { name: 'Policies' }).click();
    await page.waitForURL(`${farm.url}/account/policies`);
    await page.locator('#no-policies').waitFor();
    await page.fill('#name', 'Notes only');
    await page.fill('#kinds', '1, seven');
    await page.getByRole('button', { name: 'Create policy' }).click();
    const mistake = page.locator('#kinds-error');
    await mistake.waitFor();
    assert.match((await mistake.textContent()) ?? '', /numbers from 0 to 65535/);
    assert.equal(await page.locator('#kinds').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.inputValue('#name'), 'Notes only');

    await page.fill('#kinds', '1');
    await page.check('#nip44_encrypt');
    await page.fill('#max_uses', '100');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await page.locator('#policies-notice').waitFor();
    const card = page.locator('.custom-policy');
    assert.equal(await card.count(), 1);
    assert.equal(await card.locator('.policy-name').textContent(), 'Notes only');
    const text = (await card.textContent()) ?? '';
    assert.match(text, /short notes \(kind 1\)/);
    assert.match(text, /Encrypt messages as you \(NIP-44\)/);
    assert.match(text, /more than 100 times/);
    await screenshot(page, 'policies');
  });

  it("changes a connected app's policy from the connected-apps page, in force on its next request", async () => {
    const app = await authorizeApp(farm.url, user.session, 'full', 'browser-policy-app');
    assert.equal((await rpc(farm.url, app.access_token, 'sign_event', [note(7)])).status, 200);

    await page.locator('nav.main').getByRole('link', { name: 'Connected apps' }).click();
    await page.waitForURL(`${farm.url}/account/apps`);
    const card = page.locator('.app', { hasText: 'browser-policy-app' });
    assert.equal(await card.locator('.app-policy').textContent(), 'Full access');
    await card.locator('select[name=policy_slug]').selectOption({ label: 'Notes only' });
    await card.getByRole('button', { name: 'Change permission of browser-policy-app' }).click();
    await page.getByText('The permission is changed').waitFor();
    const changed = page.locator('.app', { hasText: 'browser-policy-app' });
    assert.equal(await changed.locator('.app-policy').textContent(), 'Notes only');
    await screenshot(page, 'apps-policy-changed');

    // The app's next requests: kind 7 no longer, kind 1 still.
    const refused = await rpc(farm.url, app.access_token, 'sign_event', [note(7)]);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error, 'Operation denied by policy');
    assert.equal((await rpc(farm.url, app.access_token, 'sign_event', [note(1)])).status, 200);
  });

  it("offers the user's own narrower policy at consent, grants it, and refuses another user's", async () => {
    thirdParty = await startThirdPartyApp(farm.url, { clientId: 'Policy App', scope: 'policy:social' });
    await page.goto(`${farm.url}/account/policies`);
    const slug = (await page.locator('.custom-policy').getAttribute('data-policy')) ?? '';
    assert.match(slug, /^p-/);
    const other = await registerUser(farm.url);
    const theirs = await call(
      farm.url,
      'POST',
      '/api/user/policies',
      { name: 'theirs', permissions: { allowed_kinds: [1] } },
      other.session,
    );
    assert.equal(theirs.status, 201);

    await page.goto(thirdParty.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    const choices = await page
      .locator('#scope option')
      .evaluateAll((os) => os.map((o) => o.getAttribute('value') ?? ''));
    assert.ok(choices.includes(`policy:${slug}`), 'the narrower custom policy is offered');
    assert.ok(!choices.includes(`policy:${theirs.body.slug}`), "another user's policy is not offered");

    // Attack: the form edited to grant another user's policy is refused, and the app gets no code.
    await page.evaluate(`document.querySelector('#scope option').value = 'policy:${theirs.body.slug}'`);
    await page.click('#approve');
    await page.getByText('That permission does not exist').waitFor();
    assert.ok(!page.url().includes('code='));

    await page.goto(thirdParty.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    await page.selectOption('#scope', `policy:${slug}`);
    await page.click('#approve');
    await page.waitForURL(`${thirdParty.redirectUri}?**`);
    recordSecret(new URL(page.url()).searchParams.get('code') ?? '');
    await page.locator('#tokens').filter({ hasText: /\S/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    const tokens = JSON.parse((await page.locator('#tokens').textContent()) ?? '{}');
    recordSecret(tokens.access_token);
    recordSecret(tokens.refresh_token);
    recordSecret(new URL(tokens.bunker_url).searchParams.get('secret') ?? '');
    assert.equal(tokens.scope, `policy:${slug}`);
    // Kind 1 only: the note the app signs is allowed, a reaction is not.
    assert.equal((await rpc(farm.url, tokens.access_token, 'sign_event', [note(1)])).status, 200);
    assert.equal((await rpc(farm.url, tokens.access_token, 'sign_event', [note(7)])).status, 403);
  });
});
