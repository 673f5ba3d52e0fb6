// The pages put each refusal a service gives on the form field it is about, recognised by the error's
// reason or class (never its text), in words for the user, with the status the JSON API would give.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { nsecEncode } from 'nostr-tools/nip19';
import { generateSecretKey } from 'nostr-tools/pure';
import { registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

describe('form refusals on their fields', () => {
  let farm: TestFarm;

  // No service relays, so a bunker without a relay of its own is refused.
  before(async () => {
    farm = await startTestFarm('form-fields', { BUNKER_RELAYS: '' }, { api: true });
  });
  after(async () => farm?.stop());

  /** Posts `fields` to `path` as a browser would: with the CSRF cookie and token from the form at `formPath`. */
  async function submit(path: string, fields: Record<string, string>, session?: string, formPath = path) {
    const sessionCookie = session ? [`keyfarm_session=${session}`] : [];
    const page = await fetch(farm.url + formPath, {
      headers: { cookie: sessionCookie.join('; ') },
      redirect: 'manual',
    });
    const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
    assert.ok(token, `a form token on ${formPath}`);
    const cookie = [...sessionCookie, ...page.headers.getSetCookie().map((c) => c.split(';', 1)[0]!)].join('; ');
    const res = await fetch(farm.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ ...fields, _csrf: token }).toString(),
      redirect: 'manual',
    });
    return { status: res.status, html: await res.text() };
  }

  /** The error shown beside `field`, or undefined. */
  const fieldError = (html: string, field: string) =>
    new RegExp(`<p class="field-error" id="${field}-error">([^<]*)</p>`).exec(html)?.[1];

  const newPassword = () => {
    const password = `pw-${randomBytes(12).toString('hex')}`;
    recordSecret(password);
    return password;
  };

  it('register: a bad key, a taken email and a taken key each land on their field', async () => {
    const password = newPassword();
    const register = (fields: Record<string, string>) =>
      submit('/register', { password, confirm_password: password, ...fields });

    const badKey = await register({ email: `bad-key-${Date.now()}@example.com`, nsec: 'nsec1notakey' });
    assert.equal(badKey.status, 400);
    assert.match(fieldError(badKey.html, 'nsec') ?? '', /^That is not a secret key/);

    const taken = await registerUser(farm.url);
    const takenEmail = await register({ email: taken.email });
    assert.equal(takenEmail.status, 409);
    assert.equal(fieldError(takenEmail.html, 'email'), 'There is already an account with this email. Log in instead.');

    const nsec = nsecEncode(generateSecretKey());
    await registerUser(farm.url, { nsec });
    const takenKey = await register({ email: `taken-key-${Date.now()}@example.com`, nsec });
    assert.equal(takenKey.status, 409);
    assert.equal(fieldError(takenKey.html, 'nsec'), 'This key already belongs to an account here.');
  });

  it("change email: the same address and another account's address land on the email field", async () => {
    const user = await registerUser(farm.url);
    const other = await registerUser(farm.url);
    const same = await submit(
      '/account/email',
      { email: user.email.toUpperCase(), password: user.password },
      user.session,
    );
    assert.equal(same.status, 400);
    assert.equal(fieldError(same.html, 'email'), 'That is already your address.');
    const taken = await submit('/account/email', { email: other.email, password: user.password }, user.session);
    assert.equal(taken.status, 409);
    assert.equal(fieldError(taken.html, 'email'), 'Another account has this address.');
  });

  it('change password: the same password again lands on the new password field', async () => {
    const user = await registerUser(farm.url);
    const res = await submit(
      '/account/password',
      { current_password: user.password, new_password: user.password, confirm_password: user.password },
      user.session,
    );
    assert.equal(res.status, 400);
    assert.equal(
      fieldError(res.html, 'new_password'),
      'The new password is the same as the current one: choose another.',
    );
  });

  it('bunker: an unknown policy, a refused relay and no relay at all land on their fields', async () => {
    const user = await registerUser(farm.url);
    const bunker = (fields: Record<string, string>) =>
      submit('/account/bunker', { app_name: 'An app', policy_slug: 'full', ...fields }, user.session);

    const policy = await bunker({ policy_slug: 'no-such-policy', relays: 'wss://relay.example.com' });
    assert.equal(policy.status, 400);
    assert.equal(fieldError(policy.html, 'policy_slug'), 'Choose one of the permissions in the list.');

    const refused = await bunker({ relays: 'ws://10.0.0.1' });
    assert.equal(refused.status, 400);
    assert.match(fieldError(refused.html, 'relays') ?? '', /^That relay cannot be used: relay 1: /);

    const none = await bunker({ relays: '' });
    assert.equal(none.status, 400);
    assert.match(fieldError(none.html, 'relays') ?? '', /^A bunker link needs at least one relay/);
  });

  it('nostrconnect: a link that is not one lands on the uri field, without its API prefix', async () => {
    const user = await registerUser(farm.url);
    const res = await submit(
      '/account/nostrconnect/preview',
      { uri: 'https://example.com/' },
      user.session,
      '/account/nostrconnect',
    );
    assert.equal(res.status, 400);
    assert.match(fieldError(res.html, 'uri') ?? '', /^That link cannot be used: not a nostrconnect:/);
  });

  it('reset password: an unknown link gets the page that says so', async () => {
    const password = newPassword();
    const token = randomBytes(32).toString('base64url');
    const res = await submit(
      '/reset-password',
      { token, new_password: password, confirm_password: password },
      undefined,
      '/forgot-password',
    );
    assert.equal(res.status, 400);
    assert.match(res.html, /This link no longer works/);
  });
});
