// Teams in Chromium, with the invite delivered by a real SMTP server process: an admin creates a team,
// adds a key and invites an address; the invitee opens the mailed link, logs in, joins, and sees the team
// as a member (no admin forms); the admin then connects an app to the team key and gets its bunker link.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { call } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { linkIn, waitForMail } from '../support/mail.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { newContext, recordSessionCookie, registerInBrowser, screenshot } from './browser.js';
import { startMailingFarm } from './mail-farm.js';

describe('teams in the browser', () => {
  let sink: SmtpSink;
  let farm: TestFarm;
  let browser: Browser;
  let adminContext: BrowserContext;
  let admin: Page;
  const stamp = `${process.pid}-${Date.now()}`;
  const adminEmail = `team-admin-${stamp}@example.com`;
  const memberEmail = `team-member-${stamp}@example.com`;
  const adminPassword = recordSecret(`admin-pw-${randomBytes(8).toString('hex')}`);
  const memberPassword = recordSecret(`member-pw-${randomBytes(8).toString('hex')}`);

  before(async () => {
    ({ sink, farm, browser } = await startMailingFarm('browser-teams', { BUNKER_RELAYS: 'wss://relay.example.com' }));
    adminContext = await newContext(browser);
    admin = await adminContext.newPage();
  });
  after(async () => {
    await browser?.close();
    await farm?.stop();
    await sink?.stop();
  });

  it('creates a team, invites by email, and the invitee joins from the mailed link', async () => {
    await registerInBrowser(admin, farm.url, adminEmail, adminPassword);
    await recordSessionCookie(adminContext, farm.url);

    await admin.getByRole('link', { name: 'Teams', exact: true }).click();
    await admin.waitForURL(`${farm.url}/teams`);
    await admin.fill('#team_name', 'Newsroom');
    await admin.getByRole('button', { name: 'Create team' }).click();
    await admin.waitForURL(/\/teams\/[0-9a-f-]{36}\?notice=created/);
    const teamUrl = admin.url().replace(/\?.*$/, '');
    assert.equal(await admin.locator('#team-name').textContent(), 'Newsroom');

    await admin.fill('#key_name', 'Newsroom key');
    await admin.getByRole('button', { name: 'Add key' }).click();
    await admin.waitForURL(/notice=key-added/);
    const keyPubkey = (await admin.locator('#key-list .key-pubkey').first().textContent())!.trim();
    assert.match(keyPubkey, /^[0-9a-f]{64}$/);

    // A mistake stays on its field.
    await admin.fill('#invite_email', 'not an address');
    await admin.getByRole('button', { name: 'Send invite' }).click();
    await admin.locator('#email-error').waitFor();
    await admin.fill('#invite_email', memberEmail);
    await admin.getByRole('button', { name: 'Send invite' }).click();
    await admin.waitForURL(/notice=invited/);
    await admin.locator(`#invite-list [data-invite="${memberEmail}"]`).waitFor();
    await screenshot(admin, 'team-admin');

    // The invitee has an account; they open the mail's link in their own browser.
    const registered = await call(farm.url, 'POST', '/api/auth/register', {
      email: memberEmail,
      password: memberPassword,
    });
    assert.equal(registered.status, 201);
    recordSecret(registered.body.token);
    const mail = (await waitForMail(sink.dir, memberEmail, 1)).find((m) => m.text.includes('/teams/accept'))!;
    const { link } = linkIn(mail, '/teams/accept');

    const memberContext = await newContext(browser);
    const member = await memberContext.newPage();
    await member.goto(link);
    await member.waitForURL(/\/login\?next=/);
    await member.fill('#email', memberEmail);
    await member.fill('#password', memberPassword);
    await member.getByRole('button', { name: 'Log in' }).click();
    await member.waitForURL(/\/teams\/accept\?token=/);
    await recordSessionCookie(memberContext, farm.url);
    await member.getByRole('button', { name: 'Join the team' }).click();
    await member.waitForURL(/notice=joined/);
    assert.equal(member.url().replace(/\?.*$/, ''), teamUrl);
    assert.match((await member.locator('#team-role').textContent())!, /a member/);
    assert.equal(await member.locator('#member-list .member').count(), 2);
    assert.equal(await member.locator('#key-form').count(), 0, 'members get no admin forms');
    assert.equal(await member.locator('#invite-form').count(), 0);
    await screenshot(member, 'team-member');

    // The link works once.
    await member.goto(link);
    await member.getByRole('button', { name: 'Join the team' }).click();
    await member.locator('#invite-error').waitFor();
    await memberContext.close();

    // The admin sees the new member and connects an app to the team key.
    await admin.goto(teamUrl);
    await admin.locator(`#member-list .member-email:text("${memberEmail}")`).waitFor();
    assert.equal(await admin.locator('#invite-list').count(), 0, 'the spent invite is gone');
    await admin.fill('#app_name', 'Newsroom client');
    await admin.getByRole('button', { name: 'Create bunker link' }).click();
    await admin.waitForURL(/\/authorizations\/created\?flash=/);
    const bunkerUrl = (await admin.locator('#bunker-url').textContent())!.trim();
    recordSecret(bunkerUrl);
    assert.match(bunkerUrl, /^bunker:\/\/[0-9a-f]{64}\?relay=/);
    await admin.goto(teamUrl);
    await admin.locator('#team-authorizations .app-name:text("Newsroom client")').waitFor();

    // Deleting the key takes its app with it; deleting the team leaves the admin with none.
    admin.once('dialog', (d) => void d.accept());
    await admin.getByRole('button', { name: 'Delete key' }).click();
    await admin.waitForURL(/notice=key-deleted/);
    assert.equal(await admin.locator('#key-list').count(), 0);
    assert.equal(await admin.locator('#team-authorizations').count(), 0);
    admin.once('dialog', (d) => void d.accept());
    await admin.getByRole('button', { name: 'Delete team' }).click();
    await admin.waitForURL(`${farm.url}/teams`);
    await admin.locator('#no-teams').waitFor();
  });
});
