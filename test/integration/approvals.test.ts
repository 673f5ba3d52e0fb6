// Approval per request against a real farm (api, relay-ingest, workers, PostgreSQL, Redis, a test relay):
// NIP-46 with nostr-tools' BunkerSigner (its onauth callback gets the approval URL), the HTTP RPC's 403 with
// the URL and its bounded wait, expiry, and the attacks: another user, a replayed decision or announcement,
// a form without its CSRF token, an expired approval, and a flood of pending approvals.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools';
import { npubEncode } from 'nostr-tools/nip19';
import { parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { announceApprovalDecided } from '../../shared/nip46/channels.js';
import { closeRedis, createRedis } from '../../shared/redis.js';
import { authorizeApp, call, registerUser, rpc, type TestUser as User } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import type { TestRelay } from '../support/relay.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { waitFor, within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

const ASK_POLICY = 'test-ask-notes';
const MAX_PENDING = 3;

/** Content the suite's log scan must never find (the request content shown only on the approval page). */
const privateContent = (label: string) => recordSecret(`${label} ${randomBytes(8).toString('hex')}`);

const note = (kind: number, content: string) => ({
  kind,
  content,
  tags: [['t', 'approval']],
  created_at: Math.floor(Date.now() / 1000),
});

/** The URLs a BunkerSigner's onauth received, and a way to wait for the next one. */
class AuthUrls {
  readonly seen: string[] = [];
  private waiters: ((url: string) => void)[] = [];
  readonly onauth = (url: string) => {
    this.seen.push(url);
    this.waiters.shift()?.(url);
  };
  next(): Promise<string> {
    return within(8000, new Promise<string>((resolve) => this.waiters.push(resolve)), 'auth_url');
  }
}

describe('approval per request', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  let user: User;
  const clients = new BunkerClients();

  before(async () => {
    // A reload each second: it also takes decisions whose announcement was lost.
    ({ relay, farm } = await startFarmOnTestRelay(
      'approvals',
      { APPROVAL_MAX_PENDING: String(MAX_PENDING), APPROVAL_WAIT_MAX_SECONDS: '2', APPROVAL_TTL_SECONDS: '600' },
      { reloadIntervalMs: 1000 },
    ));
    base = farm.url;
    user = await registerUser(base);
    // A policy that asks (the custom policies' own pages make such rows; here it is made directly).
    await farm.rt.db.query(
      `INSERT INTO policies (slug, display_name, description, permissions) VALUES ($1, 'Ask', 'Notes; ask for the rest', $2)`,
      [ASK_POLICY, JSON.stringify({ allowed_kinds: [1], encrypt: false, decrypt: false, ask: true })],
    );
  });

  after(async () => {
    await clients.close();
    await farm?.stop();
    await relay?.stop();
  });

  const usePolicy = (authorizationId: string, slug = ASK_POLICY) =>
    farm.rt.db.query('UPDATE authorizations SET policy_slug = $2 WHERE id = $1', [authorizationId, slug]);

  /** A connected BunkerSigner on a new bunker of `owner` under the asking policy. */
  async function askingSigner(owner: User = user) {
    const res = await call(base, 'POST', '/api/user/bunker/create', { app_name: 'Ask App' }, owner.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await usePolicy(res.body.authorization_id);
    const bp = (await parseBunkerInput(res.body.bunker_url)) as BunkerPointer;
    recordSecret(bp.secret!);
    const sk = generateSecretKey();
    recordSecret(bytesToHex(sk));
    const urls = new AuthUrls();
    const signer = await clients.connected(bp, { sk, onauth: urls.onauth });
    return { signer, urls, bp, authorizationId: res.body.authorization_id as string, clientPk: getPublicKey(sk) };
  }

  /** An app with an OAuth access token under the asking policy. */
  async function askingApp(owner: User = user) {
    const app = await authorizeApp(base, owner.session, 'social', `ask-app-${randomBytes(4).toString('hex')}`);
    const { rows } = await farm.rt.db.query<{ authorization_id: string }>(
      'SELECT authorization_id FROM oauth_tokens ORDER BY created_at DESC LIMIT 1',
    );
    await usePolicy(rows[0]!.authorization_id);
    return { token: app.access_token, authorizationId: rows[0]!.authorization_id };
  }

  /** Fetches a page as `session` would in a browser: its HTML, its form token and the cookies to post it with. */
  async function page(path: string, session: string) {
    const res = await fetch(base + path, { headers: { cookie: `keyfarm_session=${session}` }, redirect: 'manual' });
    const html = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    const cookie = [`keyfarm_session=${session}`, ...res.headers.getSetCookie().map((c) => c.split(';', 1)[0]!)].join(
      '; ',
    );
    return { status: res.status, html, token, cookie };
  }

  /** Posts a decision from the approval page, as the signed-in `who` (CSRF token from a page of theirs). */
  async function decide(url: string, decision: 'once' | 'always' | 'deny', who: User = user, csrf = true) {
    const path = new URL(url).pathname;
    const form = await page('/account', who.session);
    assert.ok(form.token);
    const fields: Record<string, string> = { decision };
    if (csrf) fields._csrf = form.token!;
    const res = await fetch(base + path, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: csrf ? form.cookie : `keyfarm_session=${who.session}`,
      },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
    return { status: res.status, location: res.headers.get('location'), html: await res.text() };
  }

  const statusOf = async (url: string) => {
    const id = new URL(url).pathname.split('/').pop();
    const { rows } = await farm.rt.db.query<{ status: string }>('SELECT status FROM approvals WHERE id = $1', [id]);
    return rows[0]?.status;
  };

  it('NIP-46: onauth gets the approval URL; the page shows the request; approving once answers the pending sign_event', async () => {
    const { signer, urls } = await askingSigner();
    const content = privateContent('a <b>reaction</b> & more');
    const signing = signer.signEvent(note(7, content));
    const url = await urls.next();
    assert.match(url, new RegExp(`^${farm.config.PUBLIC_URL}/approve/[A-Za-z0-9_-]{32}$`));

    const shown = await page(new URL(url).pathname, user.session);
    assert.equal(shown.status, 200);
    assert.match(shown.html, /id="approval-app">Ask App</);
    assert.match(shown.html, /id="approval-kind">reactions \(kind 7\)</);
    // The content is there, escaped: no markup of the app's reaches the page.
    const escaped = content.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    assert.ok(shown.html.includes(`id="approval-content">${escaped}</pre>`));
    assert.ok(!shown.html.includes('<b>reaction</b>'));

    const account = await page('/account', user.session);
    assert.match(account.html, /id="pending-approvals"/);
    assert.match(
      account.html,
      /Ask App: Sign reactions \(kind 7\) in your name<\/a>\s*<span class="muted small">asked \d+ s ago/,
    );

    const decided = await decide(url, 'once');
    assert.equal(decided.status, 303);
    const signed = await within(8000, signing, 'approved sign_event');
    assert.equal(signed.pubkey, user.pubkey);
    assert.equal(signed.kind, 7);
    assert.equal(signed.content, content);
    assert.ok(verifyEvent(signed));
    assert.match((await page(new URL(url).pathname, user.session)).html, /data-outcome="approved"/);
    assert.doesNotMatch((await page('/account', user.session)).html, /id="pending-approvals"/);
  });

  it('NIP-46: denying answers the pending request with an error', async () => {
    const { signer, urls } = await askingSigner();
    const signing = signer.signEvent(note(6, privateContent('a repost to deny')));
    const url = await urls.next();
    assert.equal((await decide(url, 'deny')).status, 303);
    await assert.rejects(within(8000, signing, 'denied sign_event'), /the user denied this request/);
  });

  it('NIP-46: approve always for a kind: the next request of that kind needs no approval, another kind still asks', async () => {
    const { signer, urls } = await askingSigner();
    const first = signer.signEvent(note(7, privateContent('first reaction')));
    const url = await urls.next();
    await decide(url, 'always');
    assert.ok(verifyEvent(await within(8000, first, 'approved always')));

    const asked = urls.seen.length;
    const second = await within(8000, signer.signEvent(note(7, privateContent('second reaction'))), 'granted kind');
    assert.ok(verifyEvent(second));
    assert.equal(urls.seen.length, asked, 'no approval asked for a granted kind');

    const other = signer.signEvent(note(30023, privateContent('an article')));
    const otherUrl = await urls.next();
    assert.notEqual(otherUrl, url);
    await decide(otherUrl, 'deny');
    await assert.rejects(within(8000, other, 'another kind'), /denied/);
  });

  it('attack: another user can neither see nor decide an approval; without the CSRF token nothing is decided', async () => {
    const { signer, urls } = await askingSigner();
    const signing = signer.signEvent(note(7, privateContent('not for the other user')));
    signing.catch(() => undefined);
    const url = await urls.next();
    const path = new URL(url).pathname;
    const mallory = await registerUser(base);

    const seen = await page(path, mallory.session);
    assert.equal(seen.status, 404);
    assert.doesNotMatch(seen.html, /not for the other user/);
    assert.equal((await decide(url, 'once', mallory)).status, 404);
    assert.equal(await statusOf(url), 'pending');

    // A guessed id is just as unknown (and the page answers the same for either).
    assert.equal((await page(`/approve/${randomBytes(24).toString('base64url')}`, user.session)).status, 404);

    // The owner's own session, but a form forged without the token.
    assert.equal((await decide(url, 'once', user, false)).status, 403);
    assert.equal(await statusOf(url), 'pending');

    // Signed out: the page asks for a login and comes back.
    const anon = await fetch(base + path, { redirect: 'manual' });
    assert.equal(anon.status, 303);
    assert.equal(anon.headers.get('location'), `/login?next=${encodeURIComponent(path)}`);

    await decide(url, 'deny');
    await assert.rejects(within(8000, signing, 'denied'), /denied/);
  });

  it('attack: a decision is used once: a replayed form and a replayed announcement send no second answer', async () => {
    const { signer, urls, bp } = await askingSigner();
    const signing = signer.signEvent(note(7, privateContent('answered once')));
    const url = await urls.next();
    await decide(url, 'once');
    await within(8000, signing, 'approved');
    const responses = () => relay.stats.publishedBy.get(bp.pubkey)?.length ?? 0;
    await new Promise((r) => setTimeout(r, 300));
    const before = responses();

    assert.equal((await decide(url, 'once')).status, 404, 'a second decision is refused');
    assert.equal((await decide(url, 'deny')).status, 404);
    const redis = createRedis(farm.rt.redisUrl);
    try {
      await announceApprovalDecided(redis, farm.config.KEY_PREFIX, new URL(url).pathname.split('/').pop()!);
    } finally {
      await closeRedis(redis);
    }
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(responses(), before, 'no second response was published');
    assert.equal(await statusOf(url), 'approved');
  });

  it('NIP-46: a decision whose announcement was lost is still answered (relay-ingest reads decided approvals)', async () => {
    const { signer, urls } = await askingSigner();
    const signing = signer.signEvent(note(7, privateContent('announcement lost')));
    const url = await urls.next();
    // Decided as the page does, but nobody hears of it.
    await farm.rt.db.query(`UPDATE approvals SET status = 'approved', decided_at = now() WHERE id = $1`, [
      new URL(url).pathname.split('/').pop(),
    ]);
    assert.ok(verifyEvent(await within(8000, signing, 'answer after a lost announcement')));
  });

  it('attack: an expired approval cannot be approved, shows as expired and leaves the account page', async () => {
    const { signer, urls } = await askingSigner();
    const signing = signer.signEvent(note(7, privateContent('too late')));
    signing.catch(() => undefined);
    const url = await urls.next();
    const id = new URL(url).pathname.split('/').pop();
    await farm.rt.db.query(`UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = $1`, [id]);

    assert.equal((await decide(url, 'once')).status, 404);
    assert.equal(await statusOf(url), 'pending');
    const shown = await page(new URL(url).pathname, user.session);
    assert.equal(shown.status, 410);
    assert.match(shown.html, /data-outcome="expired"/);
    assert.doesNotMatch((await page('/account', user.session)).html, new RegExp(id!));
  });

  it('HTTP: 403 with the approval URL; the same call sent again after approval runs once', async () => {
    const { token } = await askingApp();
    const event = note(7, privateContent('http reaction'));
    const asked = await rpc(base, token, 'sign_event', [event]);
    assert.equal(asked.status, 403);
    assert.equal(asked.body.reason, 'approval_required');
    assert.match(asked.body.approval_url, new RegExp(`^${farm.config.PUBLIC_URL}/approve/[A-Za-z0-9_-]{32}$`));

    // Sent again before the decision: the same approval, not a new one.
    const again = await rpc(base, token, 'sign_event', [event]);
    assert.equal(again.body.approval_url, asked.body.approval_url);

    const shown = await page(new URL(asked.body.approval_url).pathname, user.session);
    assert.match(shown.html, /over HTTP/);
    await decide(asked.body.approval_url, 'once');
    const ran = await rpc(base, token, 'sign_event', [event]);
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    assert.ok(verifyEvent(ran.body.result));
    assert.equal(ran.body.result.content, event.content);

    // Once: the next identical call asks again.
    const replay = await rpc(base, token, 'sign_event', [event]);
    assert.equal(replay.status, 403);
    assert.notEqual(replay.body.approval_url, asked.body.approval_url);
    await decide(replay.body.approval_url, 'deny');
    // What the policy allows outright never asks.
    assert.equal((await rpc(base, token, 'sign_event', [note(1, 'allowed note')])).status, 200);
  });

  it('HTTP: Prefer: wait=N holds the call until the decision, bounded by APPROVAL_WAIT_MAX_SECONDS', async () => {
    const { token } = await askingApp();
    // Nobody decides: held for the setting's 2 s (not the 30 asked for), then 403 with the URL.
    const started = Date.now();
    const peer = getPublicKey(generateSecretKey());
    const timedOut = await rpc(base, token, 'nip44_encrypt', [peer, privateContent('plaintext to encrypt')], {
      prefer: 'wait=30',
    });
    const held = Date.now() - started;
    assert.equal(timedOut.status, 403);
    assert.ok(timedOut.body.approval_url);
    assert.ok(held >= 1900 && held < 6000, `held ${held} ms`);
    // An encryption shows its counterparty, not what is encrypted.
    const shown = await page(new URL(timedOut.body.approval_url).pathname, user.session);
    assert.match(shown.html, /id="approval-what">Encrypt a message as you \(NIP-44\)</);
    assert.match(shown.html, new RegExp(`id="approval-peer">${npubEncode(peer)}<`));
    assert.ok(shown.html.includes(peer));
    assert.doesNotMatch(shown.html, /plaintext to encrypt/);
    await decide(timedOut.body.approval_url, 'deny');

    // Decided while the call waits: it gets its signature.
    const event = note(7, privateContent('waited reaction'));
    const waiting = rpc(base, token, 'sign_event', [event], { prefer: 'wait=2' });
    let url: string | undefined;
    await waitFor(
      async () => {
        const { rows } = await farm.rt.db.query<{ id: string }>(
          `SELECT id FROM approvals WHERE door = 'http' AND status = 'pending' AND kind = 7 ORDER BY created_at DESC LIMIT 1`,
        );
        url = rows[0] && `${base}/approve/${rows[0].id}`;
        return url !== undefined;
      },
      2000,
      'the waiting call to ask',
    );
    await decide(url!, 'once');
    const answered = await waiting;
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.ok(verifyEvent(answered.body.result));

    // Denied while it waits: 403 naming the denial.
    const denied = rpc(base, token, 'sign_event', [note(7, privateContent('denied while waiting'))], {
      prefer: 'wait=2',
    });
    await waitFor(
      async () => {
        const { rows } = await farm.rt.db.query<{ id: string }>(
          `SELECT id FROM approvals WHERE door = 'http' AND status = 'pending' AND kind = 7 ORDER BY created_at DESC LIMIT 1`,
        );
        url = rows[0] && `${base}/approve/${rows[0].id}`;
        return rows[0] !== undefined;
      },
      2000,
      'the second waiting call to ask',
    );
    await decide(url!, 'deny');
    const refused = await denied;
    assert.equal(refused.status, 403);
    assert.equal(refused.body.reason, 'approval_denied');
  });

  it('attack: a flood of identical waiting calls holds no more waits than APPROVAL_MAX_PENDING', async () => {
    const { token } = await askingApp();
    const event = note(7, privateContent('the same call many times'));
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        rpc(base, token, 'sign_event', [event], { prefer: 'wait=2' }).then((r) => ({ ...r, ms: Date.now() - started })),
      ),
    );
    assert.ok(answers.every((r) => r.status === 403));
    assert.equal(new Set(answers.map((r) => r.body.approval_url)).size, 1, 'one approval for the identical calls');
    const held = answers.filter((r) => r.ms >= 1500).length;
    assert.equal(held, MAX_PENDING, `held: ${answers.map((r) => r.ms).join(', ')} ms`);
    await decide(answers[0]!.body.approval_url, 'deny');
  });

  it('attack: flooding pending approvals stops at APPROVAL_MAX_PENDING, on both doors', async () => {
    const { token, authorizationId } = await askingApp();
    for (let i = 0; i < MAX_PENDING; i++) {
      const r = await rpc(base, token, 'sign_event', [note(7, `flood ${i}`)]);
      assert.equal(r.status, 403);
    }
    const over = await rpc(base, token, 'sign_event', [note(7, 'flood over')]);
    assert.equal(over.status, 429);
    assert.match(over.body.error, /too many requests are waiting/);
    const { rows } = await farm.rt.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM approvals WHERE authorization_id = $1`,
      [authorizationId],
    );
    assert.equal(rows[0]!.n, MAX_PENDING);

    // A flood of concurrent requests cannot pass the bound together.
    const { token: token2, authorizationId: auth2 } = await askingApp();
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, i) => rpc(base, token2, 'sign_event', [note(7, `burst ${i}`)])),
    );
    assert.equal(burst.filter((r) => r.status === 403).length, MAX_PENDING);
    assert.equal(burst.filter((r) => r.status === 429).length, 12 - MAX_PENDING);
    const { rows: rows2 } = await farm.rt.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM approvals WHERE authorization_id = $1`,
      [auth2],
    );
    assert.equal(rows2[0]!.n, MAX_PENDING);

    // NIP-46: past the bound the request is refused at once, with no URL.
    const { signer, urls } = await askingSigner();
    const pending = [];
    for (let i = 0; i < MAX_PENDING; i++) {
      const p = signer.signEvent(note(7, `nip46 flood ${i}`));
      p.catch(() => undefined);
      pending.push(p);
      await urls.next();
    }
    await assert.rejects(
      within(8000, signer.signEvent(note(7, 'nip46 flood over')), 'over the bound'),
      /too many requests are waiting/,
    );
    assert.equal(urls.seen.length, MAX_PENDING);
  });

  it('a policy without ask still refuses outright, with no approval made', async () => {
    const app = await authorizeApp(base, user.session, 'social', 'plain-social');
    const before = await farm.rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM approvals');
    const r = await rpc(base, app.access_token, 'sign_event', [note(30023, 'an article')]);
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'Operation denied by policy');
    assert.equal(r.body.approval_url, undefined);
    const after = await farm.rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM approvals');
    assert.equal(after.rows[0]!.n, before.rows[0]!.n);
  });
});
