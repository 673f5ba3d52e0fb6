// The consent page and the forms around it in a real browser: the decision fits a 390×844 phone, the user may
// grant less than the app asked (never more, even from an edited form), a session that ended while consent
// was open leads back through login, login and consent work with the keyboard alone, a lockout says how long
// to wait, a bunker link always names a relay, and a bunker link's one-time page opens only for its session
// (Redis holding it only sealed meanwhile).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { call, registerUser } from '../support/client.js';
import { suiteRedis } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { dumpRedis, markerForms } from '../support/redis-dump.js';
import { focusedId, launchBrowser, newContext, screenshot, UI_TIMEOUT_MS } from './browser.js';
import { startThirdPartyApp, type ThirdPartyApp } from './third-party-app.js';

const PHONE = { width: 390, height: 844 };

describe('consent and forms in the browser', () => {
  let farm: TestFarm;
  let browser: Browser;
  let socialApp: ThirdPartyApp;
  let fullApp: ThirdPartyApp;

  /** A browser context signed in as a new user (the session cookie the login sets). */
  const signedInContext = async (options: Parameters<typeof newContext>[1] = {}) => {
    const user = await registerUser(farm.url);
    const context = await newContext(browser, options);
    await context.addCookies([{ name: 'keyfarm_session', value: user.session, url: farm.url }]);
    return { user, context };
  };
  const tokensOf = async (page: Page) => {
    await page.locator('#tokens').filter({ hasText: /\S/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    const tokens = JSON.parse((await page.locator('#tokens').textContent()) ?? '{}');
    if (tokens.access_token) recordSecret(tokens.access_token);
    if (tokens.refresh_token) recordSecret(tokens.refresh_token);
    if (tokens.bunker_url) recordSecret(new URL(tokens.bunker_url).searchParams.get('secret') ?? '');
    return tokens;
  };
  /** Presses Tab until the element with this id has the focus (at most `max` times). */
  const tabTo = async (page: Page, id: string, max = 15) => {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      if ((await focusedId(page)) === id) return;
    }
    assert.fail(`#${id} not reached with Tab`);
  };

  before(async () => {
    [farm, browser] = await Promise.all([
      startTestFarm('browser-consent', { BUNKER_RELAYS: '', LOGIN_LIMIT_ACCOUNT_IP: '3/15m' }),
      launchBrowser(),
    ]);
    socialApp = await startThirdPartyApp(farm.url, { clientId: 'Pixel Notes', scope: 'policy:social' });
    fullApp = await startThirdPartyApp(farm.url, { clientId: 'Everything App', scope: 'policy:full' });
  });
  after(async () => {
    await browser?.close();
    await socialApp?.close();
    await fullApp?.close();
    await farm?.stop();
  });

  it('shows only the decision on a 390×844 phone: Allow and Deny in view without scrolling, no account menu', async () => {
    const { context, user } = await signedInContext({ viewport: PHONE });
    const page = await context.newPage();
    await page.goto(fullApp.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    for (const id of ['#approve', '#deny']) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box, id);
      assert.ok(box.y >= 0 && box.y + box.height <= PHONE.height, `${id} at y=${box.y} is outside the screen`);
      assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, `${id} at x=${box.x} is outside the screen`);
    }
    assert.equal(await page.evaluate('window.scrollY'), 0);
    assert.ok(
      ((await page.evaluate('document.documentElement.scrollWidth')) as number) <= PHONE.width,
      'no sideways scrolling',
    );
    assert.equal(await page.locator('nav, #logout').count(), 0, 'no account menu');
    assert.equal(await page.locator('#app-name').textContent(), 'Everything App');
    assert.equal(await page.locator('#redirect-origin').textContent(), fullApp.origin);
    assert.equal(await page.locator('#account-email').textContent(), user.email);
    // What it may do, in the policy's own words, and the narrower choices.
    const policies = (await call(farm.url, 'GET', '/api/policies')).body as { slug: string; description: string }[];
    assert.equal(
      await page.locator('#scope-words').textContent(),
      policies.find((p) => p.slug === 'full')!.description,
    );
    const choices = await page
      .locator('#scope option')
      .evaluateAll((options) => options.map((o) => (o as unknown as { value: string }).value));
    assert.equal(choices[0], 'policy:full');
    for (const narrower of ['policy:social', 'policy:readonly']) assert.ok(choices.includes(narrower), narrower);
    // The script puts the chosen policy's words beside the choice.
    await page.selectOption('#scope', 'policy:readonly');
    assert.equal(
      await page.locator('#scope-words').textContent(),
      policies.find((p) => p.slug === 'readonly')!.description,
    );
    await screenshot(page, 'consent-phone');
    await context.close();
  });

  it('grants the narrower policy the user picks: the token response says so and the policy binds the app', async () => {
    const { context } = await signedInContext();
    const page = await context.newPage();
    await page.goto(fullApp.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    await page.selectOption('#scope', 'policy:readonly');
    await page.click('#approve');
    await page.waitForURL(`${fullApp.redirectUri}?**`);
    recordSecret(new URL(page.url()).searchParams.get('code') ?? '');
    const tokens = await tokensOf(page);
    assert.equal(tokens.scope, 'policy:readonly');
    assert.equal(tokens.policy.slug, 'readonly');
    // The app asked for everything; it got read-only, so signing a note is refused.
    await page.locator('#status').filter({ hasText: /\d{3}/ }).waitFor();
    assert.equal(await page.locator('#status').textContent(), '403');
    await context.close();
  });

  it('refuses a grant wider than the app asked for, even when the form is edited, and gives the app no code', async () => {
    const { context } = await signedInContext();
    const page = await context.newPage();
    await page.goto(socialApp.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    await page.evaluate(`document.querySelector('#scope option').value = 'policy:full'`);
    await page.click('#approve');
    await page.getByText('You can give the app only what it asked for').waitFor();
    assert.equal(new URL(page.url()).origin, farm.url, 'not sent back to the app');
    assert.ok(!page.url().includes('code='));
    await context.close();
  });

  it('a session that ended while consent was open leads through login back to the consent, then to the app', async () => {
    const { context, user } = await signedInContext();
    const page = await context.newPage();
    await page.goto(socialApp.origin);
    await page.click('#login');
    await page.locator('#approve').waitFor();
    // The user logs out in another tab: the session ends on the server and in the browser.
    const other = await context.newPage();
    await other.goto(`${farm.url}/account`);
    await other.locator('#logout').click();
    await other.waitForURL(`${farm.url}/login`);
    await other.close();

    await page.click('#approve');
    await page.waitForURL(/\/login\?next=/);
    assert.equal(new URL(new URL(page.url()).searchParams.get('next')!, farm.url).pathname, '/api/oauth/authorize');
    await page.getByText('Log in again to answer Pixel Notes').waitFor();
    await screenshot(page, 'consent-session-ended');
    await page.fill('#email', user.email);
    await page.fill('#password', user.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#approve').waitFor();
    assert.equal(await page.locator('#app-name').textContent(), 'Pixel Notes');
    await page.click('#approve');
    await page.waitForURL(`${socialApp.redirectUri}?**`);
    recordSecret(new URL(page.url()).searchParams.get('code') ?? '');
    const tokens = await tokensOf(page);
    assert.equal(tokens.scope, 'policy:social');
    assert.equal(await page.locator('#state-check').textContent(), 'state ok');
    recordSecret((await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')?.value ?? '');
    await context.close();
  });

  it('logs in and consents with the keyboard alone (Tab and Enter)', async () => {
    const user = await registerUser(farm.url);
    const context = await newContext(browser, { viewport: PHONE });
    const page = await context.newPage();
    await page.goto(socialApp.origin);
    await tabTo(page, 'login');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/api\/oauth\/authorize/);
    await page.locator('#email').waitFor();
    await tabTo(page, 'email');
    await page.keyboard.type(user.email);
    await page.keyboard.press('Tab');
    assert.equal(await focusedId(page), 'password');
    await page.keyboard.type(user.password);
    await page.keyboard.press('Enter');
    await page.locator('#approve').waitFor();
    await tabTo(page, 'approve');
    await screenshot(page, 'consent-keyboard');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${socialApp.redirectUri}?**`);
    recordSecret(new URL(page.url()).searchParams.get('code') ?? '');
    const tokens = await tokensOf(page);
    assert.equal(tokens.scope, 'policy:social');
    recordSecret((await context.cookies(farm.url)).find((c) => c.name === 'keyfarm_session')?.value ?? '');
    await context.close();
  });

  it('a lockout says beside the login form how long to wait, and keeps the email typed', async () => {
    const user = await registerUser(farm.url);
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${farm.url}/login`);
    let message = '';
    for (let i = 0; i < 5 && !/try again in/.test(message); i++) {
      await page.fill('#email', user.email);
      await page.fill('#password', `wrong-${i}-${user.password}`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.locator('#form-error').waitFor();
      message = (await page.locator('#form-error').textContent()) ?? '';
    }
    assert.match(message, /try again in \d+ minutes?/);
    assert.equal(await page.inputValue('#email'), user.email);
    assert.equal(await page.inputValue('#password'), '');
    assert.equal(await focusedId(page), 'form-error');
    await screenshot(page, 'login-locked');
    await context.close();
  });

  it('refuses a bunker link with no relay (none configured, none entered), in the page and in JSON, and creates nothing', async () => {
    const { context, user } = await signedInContext();
    const page = await context.newPage();
    await page.goto(`${farm.url}/account/bunker`);
    await page.fill('#app_name', 'Relayless');
    await page.fill('#relays', '');
    await page.getByRole('button', { name: 'Create bunker link' }).click();
    const error = page.locator('#relays-error');
    await error.waitFor();
    assert.match((await error.textContent()) ?? '', /needs at least one relay.*enter a wss:\/\/ relay address/);
    assert.equal(await page.locator('#relays').getAttribute('aria-invalid'), 'true');
    assert.equal(await focusedId(page), 'relays');
    assert.equal(await page.inputValue('#app_name'), 'Relayless');
    await screenshot(page, 'bunker-no-relay');

    const json = await call(farm.url, 'POST', '/api/user/bunker/create', { app_name: 'Relayless' }, user.session);
    assert.equal(json.status, 400);
    assert.match(json.body.error, /needs at least one relay/);
    const sessions = await call(farm.url, 'GET', '/api/user/sessions', undefined, user.session);
    assert.deepEqual(sessions.body, []);
    await context.close();
  });

  it('shows a new bunker link once, and only to the session that created it', async () => {
    const { context } = await signedInContext();
    const page = await context.newPage();
    // The form posted with the browser's cookies, stopping at the redirect: the one-time page is not opened yet.
    await page.goto(`${farm.url}/account/bunker`);
    const posted = await context.request.post(`${farm.url}/account/bunker`, {
      form: {
        _csrf: await page.inputValue('input[name=_csrf]'),
        app_name: 'Once only',
        policy_slug: 'social',
        relays: 'wss://relay.example.com',
      },
      maxRedirects: 0,
    });
    assert.equal(posted.status(), 303);
    const resultUrl = new URL(posted.headers().location ?? '', farm.url).toString();
    assert.match(resultUrl, /\/account\/bunker\/created\?flash=[0-9a-f]{32}$/);
    // While it waits, Redis holds the link only sealed.
    const redis = suiteRedis();
    const waiting = await dumpRedis(redis, farm.config.KEY_PREFIX).finally(() => redis.disconnect());
    assert.ok(
      waiting.some((k) => k.key.includes(':flash:')),
      'the one-time value is in Redis',
    );

    // Another signed-in browser with the same address sees nothing.
    const { context: stranger } = await signedInContext();
    const strangerPage = await stranger.newPage();
    await strangerPage.goto(resultUrl);
    await strangerPage.locator('#bunker-gone').waitFor();
    assert.equal(await strangerPage.locator('#bunker-url').count(), 0);
    await stranger.close();

    // The session that created it sees the link, once.
    await page.goto(resultUrl);
    const link = new URL((await page.locator('#bunker-url').textContent()) ?? '');
    const secret = recordSecret(link.searchParams.get('secret') ?? '');
    const stored = waiting.map((k) => `${k.key} ${k.text}`).join('\n');
    for (const form of markerForms(secret))
      assert.ok(!stored.includes(form), `the bunker secret (as ${form}) was readable in Redis`);
    assert.deepEqual(link.searchParams.getAll('relay'), ['wss://relay.example.com']);
    await page.goto(resultUrl);
    await page.locator('#bunker-gone').waitFor();
    await context.close();
  });
});
