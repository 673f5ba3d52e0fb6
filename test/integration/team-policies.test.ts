// Team policies against a real farm (api, relay-ingest, workers on real PostgreSQL and Redis, a test relay):
// an admin makes a policy for the team, a team authorization under it is held to it on both doors (HTTP RPC
// and NIP-46 with nostr-tools' BunkerSigner), an edit or a switch is in force on the next request; and the
// attacks: members and outsiders changing team policies or team authorizations, a user's own policy on a
// team authorization, another team's policy, a team's policy on a personal authorization, raced creations
// past the cap, fuzzed input.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import { parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import type { Db } from '../../database/pool.js';
import { authorizeApp, call, registerUser, rpc, type TestUser as User } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { testPool } from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { linkIn, outboxOf, waitForMail } from '../support/mail.js';
import type { TestRelay } from '../support/relay.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

const MAX_TEAM_POLICIES = 3;

const note = (kind: number) => ({
  kind,
  content: `team policy ${randomBytes(4).toString('hex')}`,
  tags: [] as string[][],
  created_at: Math.floor(Date.now() / 1000),
});

const kindsOnly = (name: string, kinds: number[] | 'all') => ({ name, permissions: { allowed_kinds: kinds } });

describe('team policies', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  let db: Db;
  let alice: User;
  let bob: User;
  let carol: User;
  const clients = new BunkerClients();

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('team-policies', {
      RPC_TIMEOUT_MS: '3000',
      TEAM_MAX_POLICIES: String(MAX_TEAM_POLICIES),
      EMAIL_LIMIT_PER_ADDRESS: '100/1h',
    }));
    base = farm.url;
    db = testPool(farm.env.DATABASE_URL!, 2);
    alice = await registerUser(base);
    bob = await registerUser(base);
    carol = await registerUser(base);
  });

  after(async () => {
    await clients.close();
    await db?.end();
    await farm?.stop();
    await relay?.stop();
  });

  async function newTeam(owner: User): Promise<string> {
    const res = await call(
      base,
      'POST',
      '/api/teams',
      { name: `team ${randomBytes(3).toString('hex')}` },
      owner.session,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.team.id as string;
  }

  async function newKey(owner: User, teamId: string): Promise<string> {
    const res = await call(base, 'POST', `/api/teams/${teamId}/keys`, { name: 'shared' }, owner.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.pubkey as string;
  }

  /** Invites `who` by email, reads the mail from the outbox, and accepts it as `who`. */
  async function join(admin: User, teamId: string, who: User, role: 'admin' | 'member' = 'member') {
    const before = (await waitForMail(outboxOf(farm.config.DATA_DIR), who.email, 0)).length;
    const sent = await call(base, 'POST', `/api/teams/${teamId}/invites`, { email: who.email, role }, admin.session);
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const mail = (await waitForMail(outboxOf(farm.config.DATA_DIR), who.email, before + 1)).at(-1)!;
    const { token } = linkIn(mail, '/teams/accept');
    const res = await call(base, 'POST', '/api/teams/invites/accept', { token }, who.session);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  async function teamPolicy(admin: User, teamId: string, kinds: number[] | 'all', name = 'team policy') {
    const res = await call(base, 'POST', `/api/teams/${teamId}/policies`, kindsOnly(name, kinds), admin.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.slug as string;
  }

  async function authorize(admin: User, teamId: string, keyPubkey: string, policy: string) {
    const res = await call(
      base,
      'POST',
      `/api/teams/${teamId}/keys/${keyPubkey}/authorizations`,
      { app_name: 'team app', issue_token: true, policy_slug: policy },
      admin.session,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.policy, policy);
    recordSecret(res.body.access_token);
    recordSecret(res.body.refresh_token);
    const bp = (await parseBunkerInput(res.body.bunker_url)) as BunkerPointer;
    recordSecret(bp.secret!);
    return { id: res.body.authorization_id as string, token: res.body.access_token as string, bp };
  }

  const policyOf = async (authorizationId: string) =>
    (await db.query('SELECT policy_slug FROM authorizations WHERE id = $1', [authorizationId])).rows[0]!.policy_slug;

  const policyRows = async () =>
    (await db.query('SELECT slug, display_name, permissions, owner_user_id, owner_team_id FROM policies ORDER BY slug'))
      .rows;

  it('lets an admin make a team policy that holds a team authorization on both doors, edits in force at once', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    await join(alice, teamId, bob);
    const slug = await teamPolicy(alice, teamId, [1], 'notes only');

    // Members read the team's policies; the team page's policy list has it too.
    const listed = await call(base, 'GET', `/api/teams/${teamId}/policies`, undefined, bob.session);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.map((p: { slug: string }) => p.slug),
      [slug],
    );
    const one = await call(base, 'GET', `/api/teams/${teamId}/policies/${slug}`, undefined, bob.session);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.permissions.allowed_kinds, [1]);
    const team = await call(base, 'GET', `/api/teams/${teamId}`, undefined, bob.session);
    assert.ok(team.body.policies.some((p: { slug: string }) => p.slug === slug));
    const { rows } = await db.query('SELECT owner_user_id, owner_team_id FROM policies WHERE slug = $1', [slug]);
    assert.deepEqual(rows[0], { owner_user_id: null, owner_team_id: teamId });

    const auth = await authorize(alice, teamId, key, slug);
    const signer = await clients.connected(auth.bp);

    const signed = await rpc(base, auth.token, 'sign_event', [note(1)]);
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 403);
    const viaRelay = await within(5000, signer.signEvent(note(1)), 'sign kind 1');
    assert.ok(verifyEvent(viaRelay));
    assert.equal(viaRelay.pubkey, key);
    await assert.rejects(within(5000, signer.signEvent(note(7)), 'sign kind 7'), /denied by policy/);

    // An edit is in force on the very next request, on both doors.
    const edited = await call(
      base,
      'PUT',
      `/api/teams/${teamId}/policies/${slug}`,
      kindsOnly('reactions only', [7]),
      alice.session,
    );
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.equal(edited.body.name, 'reactions only');
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 200);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(1)])).status, 403);
    assert.ok(verifyEvent(await within(5000, signer.signEvent(note(7)), 'sign kind 7 after the edit')));
    await assert.rejects(within(5000, signer.signEvent(note(1)), 'sign kind 1 after the edit'), /denied by policy/);

    // An admin moves the authorization to another policy (a built-in), in force at once.
    const moved = await call(
      base,
      'PATCH',
      `/api/teams/${teamId}/authorizations/${auth.id}`,
      { policy: 'readonly' },
      alice.session,
    );
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.deepEqual(moved.body, { authorization_id: auth.id, policy: 'readonly' });
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 403);
    await assert.rejects(within(5000, signer.signEvent(note(7)), 'sign under readonly'), /denied by policy/);
    // And back to the team's policy.
    const back = await call(
      base,
      'PATCH',
      `/api/teams/${teamId}/authorizations/${auth.id}`,
      { policy: slug },
      alice.session,
    );
    assert.equal(back.status, 200);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 200);

    // A policy a live authorization uses is not deleted; once revoked, it is.
    const refused = await call(base, 'DELETE', `/api/teams/${teamId}/policies/${slug}`, undefined, alice.session);
    assert.equal(refused.status, 409);
    const revoke = await call(base, 'POST', `/api/teams/${teamId}/authorizations/${auth.id}/revoke`, {}, alice.session);
    assert.equal(revoke.status, 200);
    const deleted = await call(base, 'DELETE', `/api/teams/${teamId}/policies/${slug}`, undefined, alice.session);
    assert.equal(deleted.status, 204);
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}/policies`, undefined, alice.session)).body.length, 0);
  });

  it('attack: members and outsiders cannot change team policies nor move team authorizations', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    await join(alice, teamId, bob);
    const slug = await teamPolicy(alice, teamId, [1], 'notes only');
    const auth = await authorize(alice, teamId, key, slug);
    const before = await policyRows();

    // A member: 403 on every change. An outsider: 404, even to read.
    for (const [who, status] of [
      [bob, 403],
      [carol, 404],
    ] as const) {
      const tries: [string, string, unknown][] = [
        ['POST', `/api/teams/${teamId}/policies`, kindsOnly('mine', 'all')],
        ['PUT', `/api/teams/${teamId}/policies/${slug}`, kindsOnly('wider', 'all')],
        ['DELETE', `/api/teams/${teamId}/policies/${slug}`, undefined],
        ['PATCH', `/api/teams/${teamId}/authorizations/${auth.id}`, { policy: 'full' }],
      ];
      for (const [method, path, body] of tries) {
        const res = await call(base, method, path, body, who.session);
        assert.equal(res.status, status, `${method} ${path} as ${who === bob ? 'member' : 'outsider'}`);
      }
    }
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}/policies`, undefined, carol.session)).status, 404);
    assert.equal(
      (await call(base, 'GET', `/api/teams/${teamId}/policies/${slug}`, undefined, carol.session)).status,
      404,
    );

    // An admin who made a team authorization, then was made a member, can no longer move it: neither on
    // the team nor through the personal route (which never takes a team authorization).
    await call(base, 'PUT', `/api/teams/${teamId}/users/${bob.pubkey}`, { role: 'admin' }, alice.session);
    const bobs = await authorize(bob, teamId, key, slug);
    await call(base, 'PUT', `/api/teams/${teamId}/users/${bob.pubkey}`, { role: 'member' }, alice.session);
    const demoted = await call(
      base,
      'PATCH',
      `/api/teams/${teamId}/authorizations/${bobs.id}`,
      { policy: 'full' },
      bob.session,
    );
    assert.equal(demoted.status, 403);
    const personal = await call(base, 'PATCH', `/api/user/authorizations/${bobs.id}`, { policy: 'full' }, bob.session);
    assert.equal(personal.status, 404);

    assert.deepEqual(await policyRows(), before);
    assert.equal(await policyOf(auth.id), slug);
    assert.equal(await policyOf(bobs.id), slug);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 403, 'still held to the policy');
    assert.equal((await rpc(base, bobs.token, 'sign_event', [note(7)])).status, 403, 'still held to the policy');
  });

  it("attack: a user's own policy, or another team's, never governs a team authorization; a team's never a personal one", async () => {
    const teamA = await newTeam(alice);
    const teamB = await newTeam(alice);
    const keyA = await newKey(alice, teamA);
    const slugA = await teamPolicy(alice, teamA, [1], 'team A notes');
    const slugB = await teamPolicy(alice, teamB, 'all', 'team B anything');
    const own = await call(base, 'POST', '/api/user/policies', kindsOnly('alice anything', 'all'), alice.session);
    assert.equal(own.status, 201);
    const ownSlug = own.body.slug as string;
    const auth = await authorize(alice, teamA, keyA, slugA);

    // Creating a team authorization under a user's policy or another team's (the admin holds both).
    for (const slug of [ownSlug, slugB]) {
      const res = await call(
        base,
        'POST',
        `/api/teams/${teamA}/keys/${keyA}/authorizations`,
        { app_name: 'wider', policy_slug: slug },
        alice.session,
      );
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.error, /unknown policy/);
      // Moving the team authorization there, by the team route and by the personal one.
      const team = await call(
        base,
        'PATCH',
        `/api/teams/${teamA}/authorizations/${auth.id}`,
        { policy: slug },
        alice.session,
      );
      assert.equal(team.status, 400, JSON.stringify(team.body));
      const mine = await call(base, 'PATCH', `/api/user/authorizations/${auth.id}`, { policy: slug }, alice.session);
      // The personal route takes no team authorization (404); another team's policy is unknown to it (400).
      assert.equal(mine.status, slug === ownSlug ? 404 : 400, JSON.stringify(mine.body));
    }
    assert.equal(await policyOf(auth.id), slugA);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 403);

    // Team B's route does not reach team A's policy.
    assert.equal(
      (await call(base, 'GET', `/api/teams/${teamB}/policies/${slugA}`, undefined, alice.session)).status,
      404,
    );
    const across = await call(
      base,
      'PUT',
      `/api/teams/${teamB}/policies/${slugA}`,
      kindsOnly('x', 'all'),
      alice.session,
    );
    assert.equal(across.status, 404);

    // A team's policy for a personal authorization: a bunker, an OAuth grant, a switch.
    const bunker = await call(
      base,
      'POST',
      '/api/user/bunker/create',
      { app_name: 'personal', policy_slug: slugB },
      alice.session,
    );
    assert.equal(bunker.status, 400, JSON.stringify(bunker.body));
    await assert.rejects(authorizeApp(base, alice.session, slugB, 'oauth-team-policy'), /authorize failed: 400/);
    const app = await authorizeApp(base, alice.session, 'readonly', `app-${randomBytes(3).toString('hex')}`);
    const sessions = await call(base, 'GET', '/api/user/sessions', undefined, alice.session);
    const personalId = (sessions.body as { authorization_id: string; created_at: string }[]).sort((a, b) =>
      b.created_at.localeCompare(a.created_at),
    )[0]!.authorization_id;
    const moved = await call(base, 'PATCH', `/api/user/authorizations/${personalId}`, { policy: slugB }, alice.session);
    assert.equal(moved.status, 400, JSON.stringify(moved.body));
    assert.equal(await policyOf(personalId), 'readonly');
    assert.equal((await rpc(base, app.access_token, 'sign_event', [note(1)])).status, 403);
    // Nor does the user's policy route see, edit or delete a team's policy.
    assert.equal((await call(base, 'GET', `/api/user/policies/${slugB}`, undefined, alice.session)).status, 404);
    const put = await call(base, 'PUT', `/api/user/policies/${slugB}`, kindsOnly('x', []), alice.session);
    assert.equal(put.status, 404);
    assert.equal((await call(base, 'DELETE', `/api/user/policies/${slugB}`, undefined, alice.session)).status, 404);
    const policies = await call(base, 'GET', '/api/policies', undefined, alice.session);
    assert.ok(!JSON.stringify(policies.body).includes(slugB), 'not among the policies an app can be given');
  });

  it('caps the policies one team may own, even when created all at once', async () => {
    const teamId = await newTeam(alice);
    const results = await Promise.all(
      Array.from({ length: MAX_TEAM_POLICIES + 4 }, (_, i) =>
        call(base, 'POST', `/api/teams/${teamId}/policies`, kindsOnly(`p${i}`, [1]), alice.session),
      ),
    );
    assert.equal(results.filter((r) => r.status === 201).length, MAX_TEAM_POLICIES);
    assert.ok(results.every((r) => r.status === 201 || r.status === 409));
    const { rows } = await db.query('SELECT count(*)::int AS n FROM policies WHERE owner_team_id = $1', [teamId]);
    assert.equal(rows[0].n, MAX_TEAM_POLICIES);
    // The cap is per team: the same admin's own policies are not counted against it, nor it against them.
    const mine = await call(base, 'POST', '/api/user/policies', kindsOnly('mine', [1]), alice.session);
    assert.equal(mine.status, 201);
  });

  it('answers fuzzed input with a 4xx and changes nothing', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    const slug = await teamPolicy(alice, teamId, [1]);
    const auth = await authorize(alice, teamId, key, slug);
    const before = await policyRows();
    const ok = kindsOnly('ok', [1]);
    const bad: [string, string, unknown][] = [
      ['POST', `/api/teams/${teamId}/policies`, {}],
      ['POST', `/api/teams/${teamId}/policies`, { name: '', permissions: { allowed_kinds: [] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: '   ', permissions: { allowed_kinds: [] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'n'.repeat(101), permissions: { allowed_kinds: [] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'nul\u0000', permissions: { allowed_kinds: [] } }],
      ['POST', `/api/teams/${teamId}/policies`, { ...ok, description: 'd'.repeat(501) }],
      ['POST', `/api/teams/${teamId}/policies`, { ...ok, extra: true }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [65_536] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [-1] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [1.5] } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: 'some' } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: Array(257).fill(1) } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [], max_uses: 0 } }],
      [
        'POST',
        `/api/teams/${teamId}/policies`,
        { name: 'k', permissions: { allowed_kinds: [], max_content_bytes: 2e6 } },
      ],
      [
        'POST',
        `/api/teams/${teamId}/policies`,
        { name: 'k', permissions: { allowed_kinds: [], expires_after_seconds: 1 } },
      ],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [], ask: 'yes' } }],
      ['POST', `/api/teams/${teamId}/policies`, { name: 'k', permissions: { allowed_kinds: [], root: true } }],
      ['POST', `/api/teams/${teamId}/policies`, '{"name":'],
      ['POST', '/api/teams/not-a-uuid/policies', ok],
      ['POST', '/api/teams/00000000-0000-4000-8000-000000000000/policies', ok],
      ['GET', `/api/teams/${teamId}/policies/UPPER`, undefined],
      ['GET', `/api/teams/${teamId}/policies/${'p'.repeat(300)}`, undefined],
      ['PUT', `/api/teams/${teamId}/policies/${slug}`, { name: 'x' }],
      ['PUT', `/api/teams/${teamId}/policies/${slug}`, { ...ok, permissions: { allowed_kinds: ['1'] } }],
      ['PUT', `/api/teams/${teamId}/policies/p-doesnotexist`, ok],
      ['PUT', `/api/teams/${teamId}/policies/social`, ok],
      ['DELETE', `/api/teams/${teamId}/policies/social`, undefined],
      ['DELETE', `/api/teams/${teamId}/policies/p-doesnotexist`, undefined],
      ['PATCH', `/api/teams/${teamId}/authorizations/${auth.id}`, {}],
      ['PATCH', `/api/teams/${teamId}/authorizations/${auth.id}`, { policy: 'no-such-policy' }],
      ['PATCH', `/api/teams/${teamId}/authorizations/${auth.id}`, { policy: slug, extra: 1 }],
      ['PATCH', `/api/teams/${teamId}/authorizations/${auth.id}`, { policy: 'Bad Slug' }],
      ['PATCH', `/api/teams/${teamId}/authorizations/not-a-uuid`, { policy: 'social' }],
      ['PATCH', `/api/teams/${teamId}/authorizations/00000000-0000-4000-8000-000000000000`, { policy: 'social' }],
    ];
    for (const [method, path, body] of bad) {
      const res = await call(base, method, path, body, alice.session);
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path} ${JSON.stringify(body)}: ${res.status}`);
      assert.equal(typeof res.body.error, 'string', `${method} ${path}: an error body`);
    }
    assert.deepEqual(await policyRows(), before);
    assert.equal(await policyOf(auth.id), slug);
  });

  it('shows the team policies on the team page, and the form to make one to admins only', async () => {
    const teamId = await newTeam(alice);
    await join(alice, teamId, bob);
    await teamPolicy(alice, teamId, [1], 'Page policy');
    const page = async (who: User) => {
      const res = await fetch(`${base}/teams/${teamId}`, { headers: { cookie: `keyfarm_session=${who.session}` } });
      assert.equal(res.status, 200);
      return res.text();
    };
    const asAdmin = await page(alice);
    assert.match(asAdmin, /id="team-policies-title"/);
    assert.match(asAdmin, /Page policy/);
    assert.match(asAdmin, new RegExp(`action="/teams/${teamId}/policies"`));
    const asMember = await page(bob);
    assert.match(asMember, /Page policy/);
    assert.doesNotMatch(asMember, new RegExp(`action="/teams/${teamId}/policies"`));
  });

  it('makes a team policy and moves a team app to it through the team page forms, for admins only', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    await join(alice, teamId, bob);
    const auth = await authorize(alice, teamId, key, 'full');

    /** The team page as `who`'s browser: its cookies (session + CSRF secret) and form token. */
    const browser = async (who: User) => {
      const session = `keyfarm_session=${who.session}`;
      const res = await fetch(`${base}/teams/${teamId}`, { headers: { cookie: session } });
      const html = await res.text();
      const csrf = /(keyfarm_csrf=[^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
      const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
      assert.ok(csrf && token, 'a form token on the team page');
      const post = (path: string, fields: Record<string, string>) =>
        fetch(base + path, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${session}; ${csrf}` },
          body: new URLSearchParams({ ...fields, _csrf: token }).toString(),
          redirect: 'manual',
        });
      return { post };
    };
    const form = { name: 'From the page', kinds: '1, 7', nip44_encrypt: 'on' };

    const member = await browser(bob);
    const refused = await member.post(`/teams/${teamId}/policies`, form);
    assert.equal(refused.status, 403);
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}/policies`, undefined, alice.session)).body.length, 0);

    const admin = await browser(alice);
    const bad = await admin.post(`/teams/${teamId}/policies`, { ...form, kinds: '1, seven' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /Enter kinds as numbers/);
    const made = await admin.post(`/teams/${teamId}/policies`, form);
    assert.equal(made.status, 303);
    const listed = await call(base, 'GET', `/api/teams/${teamId}/policies`, undefined, alice.session);
    assert.equal(listed.body.length, 1);
    const slug = listed.body[0].slug as string;
    assert.deepEqual(listed.body[0].permissions.allowed_kinds, [1, 7]);
    assert.equal(listed.body[0].permissions.nip44_encrypt, true);

    const memberMove = await member.post(`/teams/${teamId}/authorizations/policy`, {
      authorization_id: auth.id,
      policy_slug: slug,
    });
    assert.equal(memberMove.status, 403);
    assert.equal(await policyOf(auth.id), 'full');
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(30_023)])).status, 200);

    const moved = await admin.post(`/teams/${teamId}/authorizations/policy`, {
      authorization_id: auth.id,
      policy_slug: slug,
    });
    assert.equal(moved.status, 303);
    assert.equal(await policyOf(auth.id), slug);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(30_023)])).status, 403, 'in force at once');
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 200);

    // Deleting the team takes its policies with it, the authorization under one too.
    assert.equal((await call(base, 'DELETE', `/api/teams/${teamId}`, undefined, alice.session)).status, 200);
    const { rows } = await db.query('SELECT count(*)::int AS n FROM policies WHERE slug = $1', [slug]);
    assert.equal(rows[0].n, 0);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note(7)])).status, 401);
  });
});
