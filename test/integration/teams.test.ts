// Teams and shared keys against a real farm (api, relay-ingest, workers on real PostgreSQL and Redis, a
// test relay): the whole lifecycle through the API, invites read from the farm's outbox, team keys signing
// on both doors (HTTP RPC and NIP-46 with nostr-tools' BunkerSigner), and the attacks: members trying
// admin actions, outsiders reading teams, invites used by the wrong account or twice, removed members'
// authorizations, keys of another team, limits raced, fuzzed input.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, nip19, verifyEvent, type Event } from 'nostr-tools';
import { parseBunkerInput } from 'nostr-tools/nip46';
import { useWebSocketImplementation } from 'nostr-tools/pool';
import WebSocket from 'ws';
import type { Db } from '../../database/pool.js';
import { call, registerUser, rpc, type TestUser as User } from '../support/client.js';
import type { TestFarm } from '../support/farm.js';
import { testPool } from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { linkIn, outboxOf, waitForMail } from '../support/mail.js';
import type { TestRelay } from '../support/relay.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

const MAX_KEYS = 3;
const MAX_MEMBERS = 4;
const MAX_TEAMS = 10;

const note = () => ({
  kind: 1,
  content: `team note ${randomBytes(4).toString('hex')}`,
  tags: [],
  created_at: Math.floor(Date.now() / 1000),
});

describe('teams and shared keys', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  let db: Db;
  let alice: User;
  let bob: User;
  let carol: User;
  const clients = new BunkerClients();

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('teams', {
      RPC_TIMEOUT_MS: '3000',
      TEAM_MAX_KEYS: String(MAX_KEYS),
      TEAM_MAX_MEMBERS: String(MAX_MEMBERS),
      TEAMS_MAX_PER_USER: String(MAX_TEAMS),
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

  async function newTeam(owner: User, name = `team ${randomBytes(3).toString('hex')}`): Promise<string> {
    const res = await call(base, 'POST', '/api/teams', { name }, owner.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.role, 'admin');
    return res.body.team.id as string;
  }

  async function newKey(owner: User, teamId: string, name = 'shared'): Promise<string> {
    const res = await call(base, 'POST', `/api/teams/${teamId}/keys`, { name }, owner.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.pubkey as string;
  }

  /** Invites `who` by email, reads the mail from the outbox, and accepts it as `who`. */
  async function invite(admin: User, teamId: string, email: string, role: 'admin' | 'member' = 'member') {
    const before = (await waitForMail(outboxOf(farm.config.DATA_DIR), email, 0)).length;
    const res = await call(base, 'POST', `/api/teams/${teamId}/invites`, { email, role }, admin.session);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const mails = await waitForMail(outboxOf(farm.config.DATA_DIR), email, before + 1);
    const mail = mails.at(-1)!;
    assert.match(mail.text, /invited to join the team/);
    return linkIn(mail, '/teams/accept').token;
  }

  async function join(admin: User, teamId: string, who: User, role: 'admin' | 'member' = 'member') {
    const token = await invite(admin, teamId, who.email, role);
    const res = await call(base, 'POST', '/api/teams/invites/accept', { token }, who.session);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { team_id: teamId, role });
  }

  async function authorize(admin: User, teamId: string, keyPubkey: string, body: Record<string, unknown> = {}) {
    const res = await call(
      base,
      'POST',
      `/api/teams/${teamId}/keys/${keyPubkey}/authorizations`,
      { app_name: 'team app', issue_token: true, ...body },
      admin.session,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    recordSecret(res.body.access_token);
    recordSecret(res.body.refresh_token);
    const bp = (await parseBunkerInput(res.body.bunker_url))!;
    recordSecret(bp.secret!);
    return {
      id: res.body.authorization_id as string,
      token: res.body.access_token as string,
      refresh: res.body.refresh_token as string,
      bp,
    };
  }

  /** Everything a team's admin sees, and its rows counted: what "nothing changed" compares. */
  async function snapshot(teamId: string) {
    const team = await call(base, 'GET', `/api/teams/${teamId}`, undefined, alice.session);
    const auths = await call(base, 'GET', `/api/teams/${teamId}/authorizations`, undefined, alice.session);
    const { rows } = await db.query(
      `SELECT (SELECT count(*) FROM teams)::int AS teams, (SELECT count(*) FROM team_members)::int AS members,
         (SELECT count(*) FROM team_invites)::int AS invites, (SELECT count(*) FROM keys)::int AS keys,
         (SELECT count(*) FROM authorizations WHERE revoked_at IS NULL)::int AS live`,
    );
    return { team: team.body, auths: auths.body, rows: rows[0] };
  }

  it('runs a team through its life: create, keys, invite, accept, roles, sign on both doors, remove, revoke', async () => {
    const teamId = await newTeam(alice, 'Editors');
    const listed = await call(base, 'GET', '/api/teams', undefined, alice.session);
    assert.equal(listed.status, 200);
    assert.ok(listed.body.some((t: { id: string; role: string }) => t.id === teamId && t.role === 'admin'));

    const generated = await newKey(alice, teamId, 'brand');
    const importedSk = generateSecretKey();
    const nsec = recordSecret(nip19.nsecEncode(importedSk));
    recordSecret(bytesToHex(importedSk));
    const imported = await call(
      base,
      'POST',
      `/api/teams/${teamId}/keys`,
      { name: 'imported', secret_key: nsec },
      alice.session,
    );
    assert.equal(imported.status, 201);
    assert.equal(imported.body.pubkey, getPublicKey(importedSk));
    const again = await call(
      base,
      'POST',
      `/api/teams/${teamId}/keys`,
      { name: 'twice', secret_key: bytesToHex(importedSk) },
      alice.session,
    );
    assert.equal(again.status, 409, 'one key is held once per team');

    const keys = await call(base, 'GET', `/api/teams/${teamId}/keys`, undefined, alice.session);
    assert.deepEqual(
      keys.body.map((k: { pubkey: string }) => k.pubkey),
      [generated, imported.body.pubkey],
    );
    assert.deepEqual(Object.keys(keys.body[0]).sort(), ['created_at', 'name', 'pubkey'], 'public keys only');
    const { rows } = await db.query(`SELECT owner_kind, name FROM keys WHERE owner_kind = 'team' AND owner_id = $1`, [
      teamId,
    ]);
    assert.equal(rows.length, 2, 'team keys are rows of keys with owner_kind team');

    await join(alice, teamId, bob);
    const seenByBob = await call(base, 'GET', `/api/teams/${teamId}`, undefined, bob.session);
    assert.equal(seenByBob.status, 200);
    assert.equal(seenByBob.body.role, 'member');
    assert.deepEqual(
      seenByBob.body.team_users.map((u: { role: string }) => u.role),
      ['admin', 'member'],
    );
    assert.deepEqual(seenByBob.body.invites, [], 'members do not see invites');

    // HTTP RPC with a token for the team key: the team key signs.
    const auth = await authorize(alice, teamId, generated, { policy_slug: 'social' });
    assert.deepEqual((await rpc(base, auth.token, 'get_public_key')).body, { result: generated });
    const signed = await rpc(base, auth.token, 'sign_event', [note()]);
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    const event = (
      typeof signed.body.result === 'string' ? JSON.parse(signed.body.result) : signed.body.result
    ) as Event;
    assert.equal(event.pubkey, generated);
    assert.ok(verifyEvent(event));
    assert.equal(
      (await rpc(base, auth.token, 'sign_event', [{ ...note(), kind: 30078 }])).status,
      403,
      'the policy applies',
    );
    // The token refreshes like an app's, and the new one still signs with the team key.
    const refreshed = await call(base, 'POST', '/api/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: auth.refresh,
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    recordSecret(refreshed.body.access_token);
    recordSecret(refreshed.body.refresh_token);
    recordSecret(refreshed.body.authorization_handle);
    recordSecret(refreshed.body.bunker_url);
    assert.deepEqual((await rpc(base, refreshed.body.access_token, 'get_public_key')).body, { result: generated });

    // NIP-46 with BunkerSigner on the same authorization.
    const signer = await clients.connected(auth.bp);
    assert.equal(await within(5000, signer.getPublicKey(), 'get_public_key'), generated);
    const viaRelay = await within(5000, signer.signEvent(note()), 'sign_event');
    assert.equal(viaRelay.pubkey, generated);
    assert.ok(verifyEvent(viaRelay));

    // Members see the authorizations; the user's own list shows theirs too.
    const seen = await call(base, 'GET', `/api/teams/${teamId}/authorizations`, undefined, bob.session);
    assert.equal(seen.status, 200);
    assert.deepEqual(
      seen.body.map((a: { authorization_id: string }) => a.authorization_id),
      [auth.id],
    );
    assert.equal(seen.body[0].key_pubkey, generated);
    const keyView = await call(base, 'GET', `/api/teams/${teamId}/keys/${generated}`, undefined, bob.session);
    assert.equal(keyView.body.authorizations.length, 1);

    // Roles: bob becomes admin, the last admin cannot leave or be demoted.
    assert.equal(
      (await call(base, 'PUT', `/api/teams/${teamId}/users/${bob.pubkey}`, { role: 'admin' }, alice.session)).status,
      200,
    );
    assert.equal(
      (await call(base, 'PUT', `/api/teams/${teamId}/users/${bob.pubkey}`, { role: 'member' }, bob.session)).status,
      200,
    );
    assert.equal(
      (await call(base, 'DELETE', `/api/teams/${teamId}/users/${alice.pubkey}`, undefined, alice.session)).status,
      409,
    );
    assert.equal(
      (await call(base, 'PUT', `/api/teams/${teamId}/users/${alice.pubkey}`, { role: 'member' }, alice.session)).status,
      409,
    );

    // Revoking ends it on both doors at once.
    const revoked = await call(
      base,
      'POST',
      `/api/teams/${teamId}/authorizations/${auth.id}/revoke`,
      {},
      alice.session,
    );
    assert.equal(revoked.status, 200);
    assert.equal((await rpc(base, refreshed.body.access_token, 'sign_event', [note()])).status, 403);
    await assert.rejects(within(5000, signer.signEvent(note()), 'sign after revoke'), /authorization revoked/);

    // A member may leave.
    assert.equal(
      (await call(base, 'DELETE', `/api/teams/${teamId}/users/${bob.pubkey}`, undefined, bob.session)).status,
      200,
    );
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}`, undefined, bob.session)).status, 404);
  });

  it("stops a removed member's authorization at once on both doors", async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    await join(alice, teamId, bob, 'admin');
    const auth = await authorize(bob, teamId, key);
    const signer = await clients.connected(auth.bp);
    assert.equal((await within(5000, signer.signEvent(note()), 'sign before removal')).pubkey, key);
    assert.equal((await rpc(base, auth.token, 'sign_event', [note()])).status, 200);
    // The api's token cache and the worker's authorization cache both hold it now.

    const removed = await call(base, 'DELETE', `/api/teams/${teamId}/users/${bob.pubkey}`, undefined, alice.session);
    assert.equal(removed.status, 200);
    const http = await rpc(base, auth.token, 'sign_event', [note()]);
    assert.equal(http.status, 403, JSON.stringify(http.body));
    assert.match(http.body.error, /revoked/);
    await assert.rejects(within(5000, signer.signEvent(note()), 'sign after removal'), /authorization revoked/);
    const { rows } = await db.query('SELECT revoked_at FROM authorizations WHERE id = $1', [auth.id]);
    assert.ok(rows[0].revoked_at, 'the authorization is revoked in the table');
  });

  it('leaves a removed admin no live authorization when their creations race the removal', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    await join(alice, teamId, bob, 'admin');
    const creations = Array.from({ length: 6 }, () =>
      call(
        base,
        'POST',
        `/api/teams/${teamId}/keys/${key}/authorizations`,
        { app_name: 'racing', issue_token: true },
        bob.session,
      ),
    );
    const removal = call(base, 'DELETE', `/api/teams/${teamId}/users/${bob.pubkey}`, undefined, alice.session);
    const [removed, ...created] = await Promise.all([removal, ...creations]);
    assert.equal(removed.status, 200);
    for (const res of created) {
      assert.ok(res.status === 201 || res.status === 404, `${res.status} ${JSON.stringify(res.body)}`);
      if (res.status !== 201) continue;
      recordSecret(res.body.access_token);
      recordSecret(res.body.refresh_token);
      recordSecret(res.body.bunker_url);
      assert.equal(
        (await rpc(base, res.body.access_token, 'ping')).status,
        403,
        'made before the removal, revoked by it',
      );
    }
    const { rows } = await db.query(
      `SELECT count(*)::int AS n FROM authorizations a JOIN users u ON u.id = a.user_id
         JOIN keys k ON k.id = a.signing_key_id AND k.owner_id = $2
       WHERE u.pubkey = $1 AND a.revoked_at IS NULL`,
      [bob.pubkey, teamId],
    );
    assert.equal(rows[0].n, 0);
  });

  it('refuses every admin action to a member (403) and changes nothing', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    const auth = await authorize(alice, teamId, key);
    await join(alice, teamId, bob);
    const before = await snapshot(teamId);
    const attempts: [string, string, unknown][] = [
      ['PUT', `/api/teams/${teamId}`, { name: 'taken over' }],
      ['POST', `/api/teams/${teamId}/invites`, { email: `mallory-${Date.now()}@example.com`, role: 'admin' }],
      ['POST', `/api/teams/${teamId}/invites/cancel`, { email: 'nobody@example.com' }],
      ['PUT', `/api/teams/${teamId}/users/${bob.pubkey}`, { role: 'admin' }],
      ['PUT', `/api/teams/${teamId}/users/${alice.pubkey}`, { role: 'member' }],
      ['DELETE', `/api/teams/${teamId}/users/${alice.pubkey}`, undefined],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'mine' }],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'mine', secret_key: bytesToHex(generateSecretKey()) }],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, { app_name: 'bob app', issue_token: true }],
      ['POST', `/api/teams/${teamId}/authorizations/${auth.id}/revoke`, {}],
      ['DELETE', `/api/teams/${teamId}/keys/${key}`, undefined],
      ['DELETE', `/api/teams/${teamId}`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const res = await call(base, method, path, body, bob.session);
      assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
    assert.deepEqual(await snapshot(teamId), before);
    assert.equal((await rpc(base, auth.token, 'ping')).status, 200, 'the authorization still works');
  });

  it('shows a non-member nothing of a team (404, as for a team that does not exist)', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    const auth = await authorize(alice, teamId, key);
    const before = await snapshot(teamId);
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const id of [teamId, missing]) {
      const attempts: [string, string, unknown][] = [
        ['GET', `/api/teams/${id}`, undefined],
        ['GET', `/api/teams/${id}/keys`, undefined],
        ['GET', `/api/teams/${id}/keys/${key}`, undefined],
        ['GET', `/api/teams/${id}/authorizations`, undefined],
        ['PUT', `/api/teams/${id}`, { name: 'mine now' }],
        ['POST', `/api/teams/${id}/invites`, { email: carol.email }],
        ['DELETE', `/api/teams/${id}/users/${alice.pubkey}`, undefined],
        ['POST', `/api/teams/${id}/keys`, { name: 'k' }],
        ['POST', `/api/teams/${id}/keys/${key}/authorizations`, { app_name: 'x', issue_token: true }],
        ['POST', `/api/teams/${id}/authorizations/${auth.id}/revoke`, {}],
        ['DELETE', `/api/teams/${id}/keys/${key}`, undefined],
        ['DELETE', `/api/teams/${id}`, undefined],
      ];
      for (const [method, path, body] of attempts) {
        const res = await call(base, method, path, body, carol.session);
        assert.equal(res.status, 404, `${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body, { error: 'no such team' });
      }
    }
    const listed = await call(base, 'GET', '/api/teams', undefined, carol.session);
    assert.ok(!listed.body.some((t: { id: string }) => t.id === teamId));
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}`)).status, 401, 'no session: 401');
    assert.deepEqual(await snapshot(teamId), before);
  });

  it('refuses an invite to an account with another address, and any second use of it', async () => {
    const teamId = await newTeam(alice);
    const dave = {
      email: `dave-${process.pid}-${Date.now()}@example.com`,
      password: recordSecret(`pw-${randomBytes(12).toString('hex')}`),
    };
    const token = await invite(alice, teamId, dave.email);
    const before = await snapshot(teamId);
    const stolen = await call(base, 'POST', '/api/teams/invites/accept', { token }, carol.session);
    assert.equal(stolen.status, 403, JSON.stringify(stolen.body));
    assert.deepEqual(await snapshot(teamId), before, 'a refused attempt leaves the invite for its owner');

    const reg = await call(base, 'POST', '/api/auth/register', dave);
    assert.equal(reg.status, 201);
    const daveSession = recordSecret(reg.body.token as string);
    const accepted = await call(base, 'POST', '/api/teams/invites/accept', { token }, daveSession);
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    const afterAccept = await snapshot(teamId);
    for (const session of [daveSession, carol.session, alice.session]) {
      const reused = await call(base, 'POST', '/api/teams/invites/accept', { token }, session);
      assert.equal(reused.status, 400, 'an invite works once');
    }
    assert.equal((await call(base, 'POST', '/api/teams/invites/accept', { token })).status, 401);
    assert.deepEqual(await snapshot(teamId), afterAccept);
    const { rows } = await db.query(
      'SELECT count(*)::int AS n FROM team_invites WHERE token_hash = sha256($1::bytea)',
      [Buffer.from(token)],
    );
    assert.equal(rows[0].n, 0, 'the spent invite is gone');
  });

  it("keeps each team's keys and authorizations to itself", async () => {
    const mine = await newTeam(alice);
    const myKey = await newKey(alice, mine);
    const theirs = await newTeam(carol);
    const theirKey = await newKey(carol, theirs);
    const theirAuth = await authorize(carol, theirs, theirKey);
    const before = await snapshot(theirs);

    // Carol's key through Alice's team.
    const viaMine = await call(
      base,
      'POST',
      `/api/teams/${mine}/keys/${theirKey}/authorizations`,
      { app_name: 'x' },
      alice.session,
    );
    assert.equal(viaMine.status, 404);
    assert.equal(
      (await call(base, 'GET', `/api/teams/${mine}/keys/${theirKey}`, undefined, alice.session)).status,
      404,
    );
    // Carol's authorization through Alice's team, and through the user route.
    assert.equal(
      (await call(base, 'POST', `/api/teams/${mine}/authorizations/${theirAuth.id}/revoke`, {}, alice.session)).status,
      404,
    );
    assert.equal(
      (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: theirAuth.id }, alice.session)).status,
      404,
    );
    // Alice's key through Carol's team (Carol is admin there).
    assert.equal(
      (await call(base, 'POST', `/api/teams/${theirs}/keys/${myKey}/authorizations`, { app_name: 'x' }, carol.session))
        .status,
      404,
    );
    // Importing another team's key makes a separate copy, not access to theirs.
    assert.deepEqual(await snapshot(theirs), before);
    assert.equal((await rpc(base, theirAuth.token, 'ping')).status, 200);
  });

  it('deletes a key, then the team: their apps stop on both doors and the sealed secrets are gone', async () => {
    const teamId = await newTeam(alice);
    const sk = generateSecretKey();
    recordSecret(bytesToHex(sk));
    const imported = await call(
      base,
      'POST',
      `/api/teams/${teamId}/keys`,
      { name: 'doomed', secret_key: bytesToHex(sk) },
      alice.session,
    );
    assert.equal(imported.status, 201);
    const doomed = imported.body.pubkey as string;
    const kept = await newKey(alice, teamId, 'kept');
    const onDoomed = await authorize(alice, teamId, doomed);
    const onKept = await authorize(alice, teamId, kept);
    const signer = await clients.connected(onDoomed.bp);
    assert.equal((await within(5000, signer.signEvent(note()), 'sign')).pubkey, doomed);
    assert.equal((await rpc(base, onDoomed.token, 'sign_event', [note()])).status, 200);

    assert.equal(
      (await call(base, 'DELETE', `/api/teams/${teamId}/keys/${doomed}`, undefined, alice.session)).status,
      200,
    );
    assert.equal((await rpc(base, onDoomed.token, 'sign_event', [note()])).status, 401, 'its token is gone');
    await assert.rejects(within(3000, signer.signEvent(note()), 'sign after deletion'));
    const gone = await db.query(
      `SELECT (SELECT count(*) FROM keys WHERE pubkey = $1)::int AS keys,
         (SELECT count(*) FROM authorizations WHERE id = $2)::int AS auths`,
      [doomed, onDoomed.id],
    );
    assert.deepEqual(gone.rows[0], { keys: 0, auths: 0 });
    assert.equal((await rpc(base, onKept.token, 'ping')).status, 200, 'the other key still serves');
    assert.equal(
      (await call(base, 'DELETE', `/api/teams/${teamId}/keys/${doomed}`, undefined, alice.session)).status,
      404,
    );

    assert.equal((await call(base, 'DELETE', `/api/teams/${teamId}`, undefined, alice.session)).status, 200);
    assert.equal((await rpc(base, onKept.token, 'ping')).status, 401);
    assert.equal((await call(base, 'GET', `/api/teams/${teamId}`, undefined, alice.session)).status, 404);
    const left = await db.query(
      `SELECT (SELECT count(*) FROM keys WHERE owner_kind = 'team' AND owner_id = $1)::int AS keys,
         (SELECT count(*) FROM team_members WHERE team_id = $1)::int AS members`,
      [teamId],
    );
    assert.deepEqual(left.rows[0], { keys: 0, members: 0 });
  });

  it('holds the limits when requests race (keys, members, teams)', async () => {
    const teamId = await newTeam(alice);
    const keys = await Promise.all(
      Array.from({ length: MAX_KEYS + 3 }, (_, i) =>
        call(base, 'POST', `/api/teams/${teamId}/keys`, { name: `k${i}` }, alice.session),
      ),
    );
    assert.equal(keys.filter((r) => r.status === 201).length, MAX_KEYS);
    assert.ok(keys.filter((r) => r.status !== 201).every((r) => r.status === 409));

    const invites = await Promise.all(
      Array.from({ length: MAX_MEMBERS + 2 }, (_, i) =>
        call(
          base,
          'POST',
          `/api/teams/${teamId}/invites`,
          { email: `seat${i}-${Date.now()}@example.com` },
          alice.session,
        ),
      ),
    );
    assert.equal(invites.filter((r) => r.status === 202).length, MAX_MEMBERS - 1, 'the admin holds a seat');

    const user = await registerUser(base);
    const teams = await Promise.all(
      Array.from({ length: MAX_TEAMS + 2 }, (_, i) =>
        call(base, 'POST', '/api/teams', { name: `t${i}` }, user.session),
      ),
    );
    assert.equal(teams.filter((r) => r.status === 201).length, MAX_TEAMS);
    const { rows } = await db.query(
      'SELECT count(*)::int AS n FROM team_members m JOIN users u ON u.id = m.user_id WHERE u.pubkey = $1',
      [user.pubkey],
    );
    assert.equal(rows[0].n, MAX_TEAMS);
  });

  it('answers fuzzed input with a 4xx and changes nothing', async () => {
    const teamId = await newTeam(alice);
    const key = await newKey(alice, teamId);
    const before = await snapshot(teamId);
    const longName = 'n'.repeat(101);
    const bad: [string, string, unknown][] = [
      ['POST', '/api/teams', {}],
      ['POST', '/api/teams', { name: '' }],
      ['POST', '/api/teams', { name: longName }],
      ['POST', '/api/teams', { name: 'line\nbreak' }],
      ['POST', '/api/teams', { name: 'nul\u0000' }],
      ['POST', '/api/teams', { name: ['a'] }],
      ['POST', '/api/teams', { name: 'ok', extra: 1 }],
      ['POST', '/api/teams', '{"name":'],
      ['GET', '/api/teams/not-a-uuid', undefined],
      ['GET', `/api/teams/${teamId}'--`, undefined],
      ['PUT', `/api/teams/${teamId}`, { name: longName }],
      ['POST', `/api/teams/${teamId}/invites`, { email: 'not an email' }],
      ['POST', `/api/teams/${teamId}/invites`, { email: `x${'y'.repeat(300)}@example.com` }],
      ['POST', `/api/teams/${teamId}/invites`, { email: 'a@example.com', role: 'owner' }],
      ['POST', `/api/teams/${teamId}/invites`, { email: 'a@example.com\r\nBcc: b@example.com' }],
      ['POST', '/api/teams/invites/accept', { token: 'kft_../../etc' }],
      ['POST', '/api/teams/invites/accept', { token: 'x'.repeat(300) }],
      ['POST', '/api/teams/invites/accept', { token: 'kft_unknown' }],
      ['PUT', `/api/teams/${teamId}/users/${alice.pubkey}`, { role: 'root' }],
      ['PUT', `/api/teams/${teamId}/users/${alice.pubkey.toUpperCase()}`, { role: 'admin' }],
      ['DELETE', `/api/teams/${teamId}/users/zz`, undefined],
      ['DELETE', `/api/teams/${teamId}/users/${'0'.repeat(64)}`, undefined],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'k', secret_key: 'nsec1notakey' }],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'k', secret_key: '0'.repeat(64) }],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'k', secret_key: 'f'.repeat(64) }],
      ['POST', `/api/teams/${teamId}/keys`, { name: 'k', secret_key: 'a'.repeat(201) }],
      ['POST', `/api/teams/${teamId}/keys`, { secret_key: bytesToHex(generateSecretKey()) }],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, {}],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, { app_name: 'x', policy_slug: 'no-such-policy' }],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, { app_name: 'x', relays: ['http://not-a-relay'] }],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, { app_name: 'x', expires_at: 1 }],
      ['POST', `/api/teams/${teamId}/keys/${key}/authorizations`, { app_name: 'x', issue_token: 'yes' }],
      ['POST', `/api/teams/${teamId}/keys/${'1'.repeat(64)}/authorizations`, { app_name: 'x' }],
      ['POST', `/api/teams/${teamId}/authorizations/not-a-uuid/revoke`, {}],
      ['POST', `/api/teams/${teamId}/authorizations/00000000-0000-4000-8000-000000000000/revoke`, {}],
    ];
    for (const [method, path, body] of bad) {
      const res = await call(base, method, path, body, alice.session);
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path} ${JSON.stringify(body)}: ${res.status}`);
      assert.equal(typeof res.body.error, 'string', `${method} ${path}: an error body`);
    }
    assert.deepEqual(await snapshot(teamId), before);
  });
});
