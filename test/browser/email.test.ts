// Email verification and password reset in Chromium, with the mail delivered by a real SMTP server process:
// register, see the banner, ask for a new link, open it from the mail, banner gone; forgot the password, open
// the mailed link, choose a new password, and the session on another device has ended.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { linkIn, waitForMail } from '../support/mail.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { newContext, recordSessionCookie, registerInBrowser, screenshot } from './browser.js';
import { startMailingFarm } from './mail-farm.js';

describe('email verification and password reset in the browser', () => {
  let sink: SmtpSink;
  let farm: TestFarm;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const email = `browser-mail-${Date.now()}@example.com`;
  const password = recordSecret(`first-password-${Date.now()}`);
  const newPassword = recordSecret(`reset-password-${Date.now()}`);

  before(async () => {
    ({ sink, farm, browser } = await startMailingFarm('browser-email'));
    context = await newContext(browser);
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
    await farm?.stop();
    await sink?.stop();
  });

  it('registers, shows the banner of an unconfirmed address, and the mailed link makes it go', async () => {
    await registerInBrowser(page, farm.url, email, password);
    await recordSessionCookie(context, farm.url);
    const banner = page.locator('#verify-banner');
    await banner.waitFor();
    assert.match((await banner.textContent()) ?? '', new RegExp(`confirmation link to\\s+${email}`));
    assert.equal(await page.locator('#email-status').textContent(), 'not confirmed');
    await screenshot(page, 'email-banner');
    await waitForMail(sink.dir, email, 1);

    // A new link: the first stops working.
    await page.getByRole('button', { name: 'Send a new link' }).click();
    await page.waitForURL(/notice=verification-sent/);
    assert.match((await page.locator('#verify-banner').textContent()) ?? '', /A new confirmation link is on its way/);
    const mails = await waitForMail(sink.dir, email, 2);
    const first = linkIn(mails[0]!, '/verify-email');
    const second = linkIn(mails[1]!, '/verify-email');

    await page.goto(first.link);
    await page.locator('#link-error').waitFor();
    await page.goto(second.link);
    await page.locator('#email-verified').waitFor();
    await screenshot(page, 'email-verified');
    await page.getByRole('link', { name: 'Back to your account' }).click();
    await page.waitForURL(`${farm.url}/account`);
    assert.equal(await page.locator('#verify-banner').count(), 0, 'the banner is gone');
    assert.equal(await page.locator('#email-status').textContent(), 'confirmed');
  });

  it('resets a forgotten password from the mailed link; the session on another device ends', async () => {
    // Another device, signed in.
    const otherContext = await newContext(browser);
    const other = await otherContext.newPage();
    await other.goto(`${farm.url}/login`);
    await other.fill('#email', email);
    await other.fill('#password', password);
    await other.getByRole('button', { name: 'Log in' }).click();
    await other.waitForURL(`${farm.url}/account`);
    await recordSessionCookie(otherContext, farm.url);

    await page.locator('#logout').click();
    await page.waitForURL(/\/login/);
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.waitForURL(`${farm.url}/forgot-password`);
    await page.fill('#email', email);
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page.locator('#reset-requested').waitFor();
    await screenshot(page, 'reset-requested');

    const mails = await waitForMail(sink.dir, email, 3);
    const { link } = linkIn(mails.at(-1)!, '/reset-password');
    await page.goto(link);
    await page.fill('#new_password', newPassword);
    await page.fill('#confirm_password', `${newPassword}-typo`);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#confirm_password-error').waitFor();
    await page.fill('#new_password', newPassword);
    await page.fill('#confirm_password', newPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#reset-done').waitFor();
    await screenshot(page, 'reset-done');

    // The other device's session has ended: its next page asks it to log in.
    await other.goto(`${farm.url}/account`);
    await other.waitForURL(/\/login\?next=%2Faccount/);
    await otherContext.close();

    // The link is used: opened again it no longer works.
    await page.goto(link);
    await page.locator('#link-error').waitFor();

    // The new password works, the old one does not.
    await page.goto(`${farm.url}/login`);
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#form-error').waitFor();
    await page.fill('#password', newPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${farm.url}/account`);
    await recordSessionCookie(context, farm.url);
  });
});
