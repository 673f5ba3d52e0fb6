// The pages' small pure parts: escaping, the return path after login, a policy in words, relay lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRelayLines } from '../../api/pages/bunker-form.js';
import { safeNext } from '../../api/pages/guard.js';
import { layout } from '../../api/pages/layout.js';
import { html, raw } from '../../api/pages/html.js';
import { describePolicy } from '../../api/pages/policy-words.js';
import { grantablePolicies, isNarrowerOrEqual } from '../../api/pages/policy-choice.js';
import { permWords } from '../../api/pages/views-account.js';
import { parseNostrConnectUri } from '../../api/routes/nip46.js';
import type { Policy } from '../../database/queries/policies.js';
import { isWellFormedOrigin } from '../../api/safe-origin.js';

describe('web pages', () => {
  it('escapes every interpolated value unless it is marked as markup', () => {
    const name = `<script>alert("x")</script>' & \``;
    assert.equal(
      html`<p title="${name}">${name}</p>`.value,
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp; &#96;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp; &#96;</p>',
    );
    assert.equal(html`<ul>${['<a>', html`<li>b</li>`]}</ul>`.value, '<ul>&lt;a&gt;<li>b</li></ul>');
    assert.equal(html`${raw('<svg></svg>')}${null}${undefined}${false}${0}`.value, '<svg></svg>0');
  });

  it('returns after login only to a path of this site', () => {
    for (const ok of ['/account', '/api/oauth/authorize?client_id=a%20b&state=x\\y', '/account/apps#top'])
      assert.equal(safeNext(ok), ok);
    for (const bad of [
      '//evil.example',
      '/\\evil.example',
      '/\t/evil.example',
      '/\n/evil.example',
      'https://evil.example',
      'account',
      '',
      undefined,
      `/${'a'.repeat(5000)}`,
    ]) {
      assert.equal(safeNext(bad), '/account', JSON.stringify(bad));
    }
    // Percent-encoded as the URL parser writes it, so it always fits a Location header.
    assert.equal(safeNext('/\u0100?q=\u00e9#\u2014'), '/%C4%80?q=%C3%A9#%E2%80%94');
    assert.equal(safeNext('/a\ud800'), '/a%EF%BF%BD');
    for (const bad of ['/.//evil.example', '/./\\evil.example', `/${'\u0100'.repeat(1000)}`])
      assert.equal(safeNext(bad), '/account', JSON.stringify(bad));
  });

  it('lets only a plain http(s) origin into a header', () => {
    for (const ok of [
      'https://app.example',
      'http://127.0.0.1:9',
      'http://[::1]:8080',
      'https://xn--bcher-kva.example',
      'https://a-b.c.example:65535',
    ]) {
      assert.equal(isWellFormedOrigin(ok), true, ok);
    }
    for (const bad of [
      'https://evil.example;sandbox',
      'https://a,b',
      'https://a"b',
      "https://a'b",
      'https://a_b.example',
      'https://*.example',
      'https://app.example/',
      'https://APP.example',
      'ftp://app.example',
      'https://app.example:0',
      'https://-a.example',
      'null',
      '',
    ]) {
      assert.equal(isWellFormedOrigin(bad), false, bad);
    }
  });

  it('puts a policy in plain words, what it allows and what it does not', () => {
    const full = describePolicy({ allowed_kinds: 'all', encrypt: true, decrypt: true });
    assert.ok(full.can.some((l) => l.startsWith('Sign any event')));
    assert.ok(full.can.includes('Decrypt and read your private messages.'));
    assert.deepEqual(full.cannot, ['See or export your secret key.']);
    const social = describePolicy({ allowed_kinds: [0, 1, 40000], encrypt: false, decrypt: false });
    assert.ok(
      social.can.includes('Sign these events in your name: your profile (kind 0), short notes (kind 1), kind 40000.'),
    );
    assert.ok(social.cannot.includes('Sign any other kind of event.'));
    assert.ok(social.cannot.includes('Encrypt messages as you (NIP-04, NIP-44).'));
  });

  it('reads relays one a line and refuses anything but ws:// and wss://', () => {
    assert.deepEqual(parseRelayLines(' wss://a.example \n\nwss://b.example/path\nwss://a.example'), [
      'wss://a.example',
      'wss://b.example/path',
    ]);
    assert.deepEqual(parseRelayLines(''), []);
    assert.throws(() => parseRelayLines('https://a.example'), /not a ws:\/\/ or wss:\/\/ relay/);
    assert.throws(
      () => parseRelayLines(Array.from({ length: 21 }, (_, i) => `wss://r${i}.example`).join('\n')),
      /at most 20/,
    );
  });

  it('links no operator page (Bull Board, metrics) from a page a user sees, signed in or not', () => {
    const body = html`<p>content</p>`;
    for (const user of [undefined, { email: 'someone@example.com', csrf: 'form-token' }]) {
      const page = layout({ title: 'Account', body, user, path: '/account' });
      assert.ok(page.includes('<p>content</p>'));
      assert.doesNotMatch(page, /href="[^"]*\/admin\b/i, 'a link to Bull Board');
      assert.doesNotMatch(page, /href="[^"]*\/metrics\b/i, 'a link to the metrics');
    }
  });

  it('orders policies by what they permit: a narrower one permits nothing the wider one does not', () => {
    const policy = (slug: string, permissions: Policy['permissions']): Policy => ({
      slug,
      display_name: slug,
      description: slug,
      permissions,
    });
    const full = policy('full', { allowed_kinds: 'all', encrypt: true, decrypt: true });
    const social = policy('social', { allowed_kinds: [0, 1, 3, 7, 22242], encrypt: true, decrypt: true });
    const notes = policy('notes', { allowed_kinds: [1], encrypt: false, decrypt: false });
    const readonly = policy('readonly', { allowed_kinds: [22242], encrypt: false, decrypt: true });
    const zaps = policy('zaps', { allowed_kinds: [9734], encrypt: false, decrypt: false });
    assert.ok(isNarrowerOrEqual(social.permissions, full.permissions));
    assert.ok(isNarrowerOrEqual(readonly.permissions, social.permissions));
    assert.ok(isNarrowerOrEqual(social.permissions, social.permissions));
    assert.ok(!isNarrowerOrEqual(full.permissions, social.permissions), 'all kinds is wider than a list');
    assert.ok(!isNarrowerOrEqual(zaps.permissions, social.permissions), 'a kind the wider one lacks');
    assert.ok(!isNarrowerOrEqual(readonly.permissions, notes.permissions), 'decrypt the wider one lacks');
    // A permission field the order does not know: only the same value counts.
    const withLimit = { ...notes.permissions, max_per_day: 10 } as unknown as Policy['permissions'];
    assert.ok(!isNarrowerOrEqual(withLimit, social.permissions));
    // Custom fields: per-NIP rights, and limits where smaller (or present against absent) is narrower.
    const notes44 = { ...notes.permissions, nip44_encrypt: true };
    assert.ok(isNarrowerOrEqual(notes44, social.permissions), 'a NIP-44 right the wider one has');
    assert.ok(!isNarrowerOrEqual(notes44, notes.permissions), 'a NIP-44 right the wider one lacks');
    assert.ok(isNarrowerOrEqual({ ...social.permissions, nip04_decrypt: false }, social.permissions));
    for (const limit of ['max_content_bytes', 'expires_after_seconds', 'max_uses'] as const) {
      const limited = { ...notes.permissions, [limit]: 100 };
      assert.ok(isNarrowerOrEqual(limited, social.permissions), `${limit} against none`);
      assert.ok(!isNarrowerOrEqual(notes.permissions, limited), `no ${limit} against one`);
      assert.ok(isNarrowerOrEqual({ ...notes.permissions, [limit]: 99 }, limited), `a smaller ${limit}`);
      assert.ok(!isNarrowerOrEqual({ ...notes.permissions, [limit]: 101 }, limited), `a larger ${limit}`);
    }
    const all = [readonly, zaps, full, notes, social];
    assert.deepEqual(
      grantablePolicies(full, all).map((p) => p.slug),
      ['full', 'social', 'readonly', 'notes', 'zaps'],
    );
    assert.deepEqual(
      grantablePolicies(social, all).map((p) => p.slug),
      ['social', 'readonly', 'notes'],
    );
    assert.deepEqual(
      grantablePolicies(zaps, all).map((p) => p.slug),
      ['zaps'],
    );
  });

  it('reads the perms of a nostrconnect:// link, bounded, and says them in plain words', () => {
    const pk = 'a'.repeat(64);
    const uri = (perms: string) =>
      `nostrconnect://${pk}?relay=wss%3A%2F%2Fr.example&secret=s3cret&perms=${encodeURIComponent(perms)}`;
    assert.deepEqual(parseNostrConnectUri(uri('sign_event:1, nip44_encrypt,,sign_event:1')).perms, [
      'sign_event:1',
      'nip44_encrypt',
    ]);
    assert.deepEqual(parseNostrConnectUri(`nostrconnect://${pk}?relay=wss%3A%2F%2Fr.example&secret=s`).perms, []);
    assert.throws(
      () => parseNostrConnectUri(uri(Array.from({ length: 33 }, (_, i) => `sign_event:${i}`).join(','))),
      /at most 32 perms/,
    );
    assert.throws(() => parseNostrConnectUri(uri(`x${'y'.repeat(64)}`)), /longer than 64/);
    assert.equal(permWords('sign_event:1'), 'Sign short notes (kind 1)');
    assert.equal(permWords('sign_event'), 'Sign events of any kind');
    assert.equal(permWords('nip04_decrypt'), 'Decrypt and read messages (NIP-04)');
    assert.equal(permWords('<b>odd</b>'), 'Something Keyfarm does not know: <b>odd</b>');
  });
});
