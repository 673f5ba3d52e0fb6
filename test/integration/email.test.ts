// Email verification and password reset against a real farm and a real SMTP server process (smtp-server,
// with AUTH): the mail that arrives, its links used as a person would, and the attacks on them performed —
// a link used twice (also at once), an expired link (its row aged in the database), an older link after a
// newer one, a link for an address the account no longer has, a reset link after a password change, key
// export before confirmation, account enumeration by status, body and time, mail flooding of one address
// and from one client. The outbox mode (no SMTP_URL) is checked for its files' modes and its pages.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { nip19 } from 'nostr-tools';
import { MIN_ANSWER_MS } from '../../api/services/email-verification.js';
import { hashToken } from '../../api/services/tokens.js';
import { call, registerUser } from '../support/client.js';
import { freePort } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret, testLogFile } from '../support/logs.js';
import { linkIn, mailTo, outboxOf, waitForMail, type Mail } from '../support/mail.js';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink.js';

const SMTP_FROM = 'Keyfarm Test <no-reply@keyfarm.test>';

const CSRF_COOKIE = 'keyfarm_csrf';
const cookiePair = (setCookie: string | null, name: string) =>
  new RegExp(`(?:^|,\\s*)(${name}=[^;]+)`).exec(setCookie ?? '')?.[1];
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

/** A signed-in browser's form on `path`: fetch it (cookie, CSRF token), then post fields to it. */
async function pageForm(base: string, session: string | undefined, path: string) {
  const cookie = session ? `keyfarm_session=${session}` : '';
  const res = await fetch(base + path, { headers: { cookie }, redirect: 'manual' });
  const html = await res.text();
  const csrf = cookiePair(res.headers.get('set-cookie'), CSRF_COOKIE);
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrf && token, `a form token on ${path} (${res.status})`);
  return {
    html,
    post: (fields: Record<string, string>, to = path) =>
      fetch(base + to, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: [cookie, csrf].filter(Boolean).join('; '),
        },
        body: form({ ...fields, _csrf: token }),
        redirect: 'manual',
      }),
  };
}

describe('email through a real SMTP server', () => {
  let sink: SmtpSink;
  let farm: TestFarm;
  let base: string;
  const db = () => farm.rt.db;

  before(async () => {
    sink = await startSmtpSink();
    const port = await freePort();
    farm = await startTestFarm(
      'email',
      {
        PORT: String(port),
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        SMTP_URL: sink.url,
        SMTP_FROM,
        EMAIL_LIMIT_PER_ADDRESS: '4/1h',
      },
      { api: true },
    );
    base = farm.url;
  });
  after(async () => {
    await farm?.stop();
    await sink?.stop();
  });

  const received = (to: string, count = 1) => waitForMail(sink.dir, to, count);
  const newest = async (to: string, count: number, route: string) => linkIn((await received(to, count)).at(-1)!, route);
  const emailTokenRows = async (userEmail: string, purpose: string) =>
    (
      await db().query(
        'SELECT t.* FROM email_tokens t JOIN users u ON u.id = t.user_id WHERE lower(u.email) = lower($1) AND t.purpose = $2',
        [userEmail, purpose],
      )
    ).rows;
  const verified = async (session: string) =>
    (await call(base, 'GET', '/api/user/account', undefined, session)).body.email_verified as boolean;
  const login = (email: string, password: string) => call(base, 'POST', '/api/auth/login', { email, password });

  it('mails a confirmation link at registration through the SMTP server (with AUTH); the unconfirmed account works; the link confirms it', async () => {
    const user = await registerUser(base);
    const [mail] = await received(user.email);
    assert.equal(mail!.from, SMTP_FROM);
    assert.equal(mail!.subject, 'Confirm your email address for Keyfarm');
    const { link, token } = linkIn(mail!, '/verify-email');
    assert.ok(link.startsWith(`${farm.config.PUBLIC_URL}/verify-email?token=kfv_`), 'the link is on PUBLIC_URL');
    // Stored hashed: the database holds the token's SHA-256, never the token.
    const rows = await emailTokenRows(user.email, 'verify');
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0].token_hash, hashToken(token));
    const dump = JSON.stringify((await db().query('SELECT * FROM email_tokens')).rows);
    assert.ok(!dump.includes(token), 'no plaintext token in the table');
    // Unconfirmed, the account works: a session, an app, a bunker link.
    assert.equal(await verified(user.session), false);
    const bunker = await call(
      base,
      'POST',
      '/api/user/bunker/create',
      { app_name: 'unconfirmed', policy_slug: 'social' },
      user.session,
    );
    recordSecret(bunker.body.bunker_url ?? '');
    assert.equal(bunker.status, 201);

    const used = await call(base, 'POST', '/api/auth/verify-email', { token });
    assert.deepEqual([used.status, used.body.success], [200, true]);
    assert.equal(await verified(user.session), true);
  });

  it('refuses key export until the address is confirmed, before any password is checked (as Keycast)', async () => {
    const user = await registerUser(base);
    const exportForm = await pageForm(base, user.session, '/account/export');
    assert.match(exportForm.html, /confirm your email address/i);
    const refused = await exportForm.post({ password: user.password });
    const refusedBody = await refused.text();
    assert.equal(refused.status, 403);
    assert.doesNotMatch(refusedBody, /nsec1/);
    const { token } = await newest(user.email, 1, '/verify-email');
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token })).status, 200);
    const given = await exportForm.post({ password: user.password });
    const givenBody = await given.text();
    assert.equal(given.status, 200);
    const nsec = /nsec1[02-9ac-hj-np-z]{58}/.exec(givenBody)?.[0];
    assert.ok(nsec, 'the key is exported once the address is confirmed');
    recordSecret(nsec);
    assert.equal(nip19.decode(nsec).type, 'nsec');
  });

  it('a confirmation link works once: used again (by the API or the page) it is refused', async () => {
    const user = await registerUser(base);
    const { token, link } = await newest(user.email, 1, '/verify-email');
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token })).status, 200);
    const again = await call(base, 'POST', '/api/auth/verify-email', { token });
    assert.equal(again.status, 400);
    assert.match(again.body.error, /invalid, already used or expired/);
    const page = await fetch(`${base}${new URL(link).pathname}${new URL(link).search}`);
    assert.equal(page.status, 400);
    assert.match(await page.text(), /This link no longer works/);
  });

  it('refuses an expired confirmation link (its row aged in the database) and leaves the address unconfirmed', async () => {
    const user = await registerUser(base);
    const { token } = await newest(user.email, 1, '/verify-email');
    const aged = await db().query(
      "UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
      [hashToken(token)],
    );
    assert.equal(aged.rowCount, 1);
    const res = await call(base, 'POST', '/api/auth/verify-email', { token });
    assert.equal(res.status, 400);
    assert.equal(await verified(user.session), false);
  });

  it('an older confirmation link stops working once a newer one is mailed', async () => {
    const user = await registerUser(base);
    const first = await newest(user.email, 1, '/verify-email');
    const resend = await call(base, 'POST', '/api/auth/resend-verification', {}, user.session);
    assert.deepEqual([resend.status, resend.body.success], [200, true]);
    const second = await newest(user.email, 2, '/verify-email');
    assert.notEqual(first.token, second.token);
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token: first.token })).status, 400);
    assert.equal(await verified(user.session), false);
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token: second.token })).status, 200);
    assert.equal(await verified(user.session), true);
  });

  it('after an email change the address is unconfirmed, the old link is refused, the new address gets a link and the old one a notice', async () => {
    const user = await registerUser(base);
    const oldLink = await newest(user.email, 1, '/verify-email');
    const newEmail = `changed-${Date.now()}@example.com`;
    const wrong = await call(
      base,
      'POST',
      '/api/user/change-email',
      { email: newEmail, password: 'not the password' },
      user.session,
    );
    assert.equal(wrong.status, 401);
    const changed = await call(
      base,
      'POST',
      '/api/user/change-email',
      { email: newEmail, password: user.password },
      user.session,
    );
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal((await call(base, 'GET', '/api/user/account', undefined, user.session)).body.email, newEmail);
    // The link mailed to the old address would confirm an address the account no longer has.
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token: oldLink.token })).status, 400);
    const notices = await received(user.email, 2);
    assert.match(notices.at(-1)!.text, new RegExp(`changed from ${user.email} to ${newEmail}`));
    assert.doesNotMatch(notices.at(-1)!.text, /token=/);
    const fresh = await newest(newEmail, 1, '/verify-email');
    assert.equal(await verified(user.session), false);
    assert.equal((await call(base, 'POST', '/api/auth/verify-email', { token: fresh.token })).status, 200);
    assert.equal(await verified(user.session), true);
  });

  it('resets a password by the mailed link: valid one hour, the new password works, every session ends, the link works once', async () => {
    const user = await registerUser(base);
    const second = await login(user.email, user.password);
    recordSecret(second.body.token);
    const asked = await call(base, 'POST', '/api/auth/forgot-password', { email: user.email.toUpperCase() });
    assert.deepEqual(asked.body, {
      success: true,
      message: 'If an account exists with that email, a password reset link has been sent.',
    });
    const mails = await received(user.email, 2);
    const resetMail = mails.find((m: Mail) => m.subject === 'Reset your Keyfarm password')!;
    const { token, link } = linkIn(resetMail, '/reset-password');
    assert.ok(link.startsWith(`${farm.config.PUBLIC_URL}/reset-password?token=kfp_`));
    const [row] = await emailTokenRows(user.email, 'reset');
    assert.deepEqual(row.token_hash, hashToken(token));
    const lifetime = (row.expires_at.getTime() - row.created_at.getTime()) / 1000;
    assert.ok(Math.abs(lifetime - 3600) < 5, `valid one hour (${lifetime} s)`);

    // Opening the link shows the form and does not use it.
    const formPage = await fetch(`${base}/reset-password?token=${token}`);
    assert.equal(formPage.status, 200);
    assert.equal((await call(base, 'POST', '/api/auth/reset-password', { token, new_password: 'short' })).status, 400);
    const candidates = [
      recordSecret(`reset-password-${Date.now()}`),
      recordSecret(`other-reset-password-${Date.now()}`),
    ];
    // The same link sent twice at once: one reset, one refusal.
    const both = await Promise.all(
      candidates.map((p) => call(base, 'POST', '/api/auth/reset-password', { token, new_password: p })),
    );
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 400]);
    const newPassword = candidates[both.findIndex((r) => r.status === 200)]!;
    const loser = candidates.find((p) => p !== newPassword)!;
    // Every session ended: the registration's and the later login's.
    assert.equal((await call(base, 'GET', '/api/user/account', undefined, user.session)).status, 401);
    assert.equal((await call(base, 'GET', '/api/user/account', undefined, second.body.token)).status, 401);
    assert.equal((await login(user.email, user.password)).status, 401, 'the old password is gone');
    assert.equal((await login(user.email, loser)).status, 401, 'the refused request set nothing');
    const fresh = await login(user.email, newPassword);
    assert.equal(fresh.status, 200);
    recordSecret(fresh.body.token);
    // Used once: the link is refused now, by the API and by the page.
    assert.equal(
      (await call(base, 'POST', '/api/auth/reset-password', { token, new_password: `${newPassword}-again` })).status,
      400,
    );
    assert.equal((await fetch(`${base}/reset-password?token=${token}`)).status, 400);
    assert.equal((await login(user.email, newPassword)).status, 200);
    // The link proved the mailbox: the address is confirmed.
    assert.equal(await verified(fresh.body.token), true);
  });

  it('refuses an expired reset link (its row aged past the hour) and keeps the password', async () => {
    const user = await registerUser(base);
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const { token } = await newest(user.email, 2, '/reset-password');
    const aged = await db().query(
      "UPDATE email_tokens SET created_at = now() - interval '61 minutes', expires_at = now() - interval '1 minute' WHERE token_hash = $1",
      [hashToken(token)],
    );
    assert.equal(aged.rowCount, 1);
    const res = await call(base, 'POST', '/api/auth/reset-password', { token, new_password: 'a brand new password' });
    assert.equal(res.status, 400);
    assert.match(res.body.error, /invalid, already used or expired/);
    assert.equal(
      (await call(base, 'GET', '/api/user/account', undefined, user.session)).status,
      200,
      'sessions untouched',
    );
    const still = await login(user.email, user.password);
    assert.equal(still.status, 200);
    recordSecret(still.body.token);
  });

  it('an older reset link stops working once a newer one is mailed', async () => {
    const user = await registerUser(base);
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const older = await newest(user.email, 2, '/reset-password');
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const newer = await newest(user.email, 3, '/reset-password');
    assert.notEqual(older.token, newer.token);
    assert.equal(
      (
        await call(base, 'POST', '/api/auth/reset-password', {
          token: older.token,
          new_password: 'older link password',
        })
      ).status,
      400,
    );
    const still = await login(user.email, user.password);
    assert.equal(still.status, 200);
    recordSecret(still.body.token);
    assert.equal(
      (
        await call(base, 'POST', '/api/auth/reset-password', {
          token: newer.token,
          new_password: recordSecret('newer link password'),
        })
      ).status,
      200,
    );
  });

  it('a password change cancels a reset link mailed before it', async () => {
    const user = await registerUser(base);
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const { token } = await newest(user.email, 2, '/reset-password');
    const changePage = await pageForm(base, user.session, '/account/password');
    const changedPassword = recordSecret(`changed-${Date.now()}-password`);
    const changed = await changePage.post({
      current_password: user.password,
      new_password: changedPassword,
      confirm_password: changedPassword,
    });
    assert.equal(changed.status, 200);
    const res = await call(base, 'POST', '/api/auth/reset-password', {
      token,
      new_password: 'attacker chosen password',
    });
    assert.equal(res.status, 400);
    const ok = await login(user.email, changedPassword);
    assert.equal(ok.status, 200);
    recordSecret(ok.body.token);
  });

  it('answers a reset or resend request the same for a known and an unknown address: status, body, and time', async () => {
    const user = await registerUser(base);
    await received(user.email);
    const timed = async (path: string, email: string) => {
      const started = performance.now();
      const res = await call(base, 'POST', path, { email });
      return { status: res.status, body: JSON.stringify(res.body), ms: performance.now() - started };
    };
    for (const path of ['/api/auth/forgot-password', '/api/auth/resend-verification']) {
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 3; i++) {
        const a = await timed(path, user.email);
        const b = await timed(path, `nobody-${Date.now()}-${i}@example.com`);
        assert.equal(a.status, 200);
        assert.equal(a.status, b.status, path);
        assert.equal(a.body, b.body, path);
        known.push(a.ms);
        unknown.push(b.ms);
      }
      const median = (xs: number[]) => xs.sort((x, y) => x - y)[1]!;
      // Both wait out the floor, so the work done for a real account does not show.
      assert.ok(
        Math.min(...known, ...unknown) >= MIN_ANSWER_MS - 5,
        `${path}: every answer takes the floor (${known} / ${unknown})`,
      );
      assert.ok(
        Math.abs(median(known) - median(unknown)) < 100,
        `${path}: similar times (${median(known)} vs ${median(unknown)} ms)`,
      );
    }
    // The page's answer does not tell either.
    const pageFor = async (email: string) => {
      const f = await pageForm(base, undefined, '/forgot-password');
      const res = await f.post({ email });
      return [res.status, (await res.text()).replace(/name="_csrf" value="[^"]+"/g, '')] as const;
    };
    assert.deepEqual(await pageFor(user.email), await pageFor(`nobody-page-${Date.now()}@example.com`));
  });

  it('mails one address at most EMAIL_LIMIT_PER_ADDRESS times a window; further requests get the same answer and no mail', async () => {
    const user = await registerUser(base); // its confirmation mail is the first of four
    await received(user.email);
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const res = await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
      answers.add(`${res.status} ${JSON.stringify(res.body)}`);
    }
    assert.equal(answers.size, 1, 'one answer for all six');
    await received(user.email, 4);
    await sleep(1500); // time enough for a fifth message to arrive, were one sent
    assert.equal(mailTo(sink.dir, user.email).length, 4);
    // The count is of the address, whatever its case.
    const before = mailTo(sink.dir, user.email).length;
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email.toUpperCase() });
    await sleep(500);
    assert.equal(mailTo(sink.dir, user.email).length, before);
  });

  it('never writes a mailed link or token to the log', async () => {
    const user = await registerUser(base);
    await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const mails = await received(user.email, 2);
    const log = readFileSync(testLogFile('email'), 'utf8');
    assert.match(log, /"mail":"reset"/, 'the sending is logged');
    for (const m of mails) {
      const route = m.text.includes('/reset-password') ? '/reset-password' : '/verify-email';
      const { link, token } = linkIn(m, route);
      assert.ok(!log.includes(token) && !log.includes(link), `no ${route} token in the log`);
    }
    assert.ok(!log.includes(new URL(sink.url).password), 'no SMTP password in the log');
  });
});

describe('email without SMTP_URL: the outbox folder', () => {
  let farm: TestFarm;
  let base: string;

  before(async () => {
    // No client is exempt from the request limits here, and three requests that send mail are allowed.
    farm = await startTestFarm('email-outbox', { RATE_LIMIT_ALLOWLIST: '', RATE_LIMIT_EMAIL: '3/1h' }, { api: true });
    base = farm.url;
  });
  after(async () => farm?.stop());

  it('writes each message as a file only its owner can read, in a folder only its owner can open; the pages say where', async () => {
    const user = await registerUser(base);
    const dir = outboxOf(farm.config.DATA_DIR);
    const [mail] = await waitForMail(dir, user.email);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(mail!.file).mode & 0o777, 0o600);
    assert.match(mail!.from, /^Keyfarm <keyfarm@127\.0\.0\.1>$/);
    linkIn(mail!, '/verify-email');
    const forgot = await fetch(`${base}/forgot-password`);
    assert.ok((await forgot.text()).includes(`<code id="outbox-dir">${dir}</code>`), 'the page names the outbox');
    const account = await fetch(`${base}/account`, { headers: { cookie: `keyfarm_session=${user.session}` } });
    const html = await account.text();
    assert.match(html, /id="verify-banner"/);
    assert.ok(html.includes(dir), 'the banner names the outbox');
  });

  it('limits requests that send mail per client (RATE_LIMIT_EMAIL): then 429 for known and unknown addresses alike', async () => {
    const user = await registerUser(base);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await call(base, 'POST', '/api/auth/forgot-password', { email: `someone-${i}@example.com` })).status,
      );
    assert.deepEqual(statuses, [200, 200, 200]);
    const known = await call(base, 'POST', '/api/auth/forgot-password', { email: user.email });
    const unknown = await call(base, 'POST', '/api/auth/forgot-password', { email: 'nobody-at-all@example.com' });
    assert.deepEqual([known.status, unknown.status], [429, 429]);
    assert.equal(known.body.error, unknown.body.error);
    assert.ok(Number(known.headers.get('retry-after')) > 0);
    // The form shares the count.
    const page = await pageForm(base, undefined, '/forgot-password');
    assert.equal((await page.post({ email: user.email })).status, 429);
    await sleep(300);
    assert.equal(
      mailTo(outboxOf(farm.config.DATA_DIR), user.email).filter((m) => m.subject.startsWith('Reset')).length,
      0,
    );
  });
});

describe('email when the mail server refuses Keyfarm', () => {
  let sink: SmtpSink;
  let farm: TestFarm;

  before(async () => {
    sink = await startSmtpSink();
    const url = new URL(sink.url);
    url.password = recordSecret('a-wrong-smtp-password');
    farm = await startTestFarm('email-refused', { SMTP_URL: url.toString() }, { api: true });
  });
  after(async () => {
    await farm?.stop();
    await sink?.stop();
  });

  it('answers as usual, logs the failure by its SMTP code only (no link, token or address), and sends nothing', async () => {
    const logFile = testLogFile('email-refused');
    // The log file is appended to across runs: read only what this run wrote.
    const logStart = statSync(logFile).size;
    const readLog = () => readFileSync(logFile).subarray(logStart).toString('utf8');
    const user = await registerUser(farm.url);
    const res = await call(farm.url, 'POST', '/api/auth/forgot-password', { email: user.email });
    assert.deepEqual([res.status, res.body.success], [200, true]);
    const deadline = Date.now() + 10_000;
    let failures: string[] = [];
    while (failures.length < 2 && Date.now() < deadline) {
      failures = readLog()
        .split('\n')
        .filter((l) => l.includes('"mail not sent"'));
      await sleep(50);
    }
    assert.equal(failures.length, 2, 'the confirmation and the reset mail both failed');
    for (const line of failures) assert.match(line, /"smtpError":"EAUTH"/);
    const log = readLog();
    assert.doesNotMatch(log, /kf[vp]_|token=|a-wrong-smtp-password/);
    assert.ok(!log.includes(user.email), 'the address is not logged');
    assert.equal(mailTo(sink.dir, user.email).length, 0);
  });
});
