// The pages' small pure parts: escaping, the return path after login, a policy in words, relay lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRelayLines } from '../../api/pages/account-routes.js';
import { safeNext } from '../../api/pages/guard.js';
import { html, raw } from '../../api/pages/html.js';
import { describePolicy } from '../../api/pages/policy-words.js';
import { isWellFormedOrigin } from '../../api/safe-origin.js';

describe('web pages', () => {
  it('escapes every interpolated value unless it is marked as markup', () => {
    const name = `<script>alert("x")</script>' & \``;
    assert.equal(html`<p title="${name}">${name}</p>`.value,
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp; &#96;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp; &#96;</p>');
    assert.equal(html`<ul>${['<a>', html`<li>b</li>`]}</ul>`.value, '<ul>&lt;a&gt;<li>b</li></ul>');
    assert.equal(html`${raw('<svg></svg>')}${null}${undefined}${false}${0}`.value, '<svg></svg>0');
  });

  it('returns after login only to a path of this site', () => {
    for (const ok of ['/account', '/api/oauth/authorize?client_id=a%20b&state=x\\y', '/account/apps#top']) assert.equal(safeNext(ok), ok);
    for (const bad of ['//evil.example', '/\\evil.example', '/\t/evil.example', '/\n/evil.example', 'https://evil.example', 'account', '', undefined, `/${'a'.repeat(5000)}`]) {
      assert.equal(safeNext(bad), '/account', JSON.stringify(bad));
    }
    // Percent-encoded as the URL parser writes it, so it always fits a Location header.
    assert.equal(safeNext('/\u0100?q=\u00e9#\u2014'), '/%C4%80?q=%C3%A9#%E2%80%94');
    assert.equal(safeNext('/a\ud800'), '/a%EF%BF%BD');
    for (const bad of ['/.//evil.example', '/./\\evil.example', `/${'\u0100'.repeat(1000)}`]) assert.equal(safeNext(bad), '/account', JSON.stringify(bad));
  });

  it('lets only a plain http(s) origin into a header', () => {
    for (const ok of ['https://app.example', 'http://127.0.0.1:9', 'http://[::1]:8080', 'https://xn--bcher-kva.example', 'https://a-b.c.example:65535']) {
      assert.equal(isWellFormedOrigin(ok), true, ok);
    }
    for (const bad of ['https://evil.example;sandbox', 'https://a,b', 'https://a"b', "https://a'b", 'https://a_b.example', 'https://*.example',
      'https://app.example/', 'https://APP.example', 'ftp://app.example', 'https://app.example:0', 'https://-a.example', 'null', '']) {
      assert.equal(isWellFormedOrigin(bad), false, bad);
    }
  });

  it('puts a policy in plain words, what it allows and what it does not', () => {
    const full = describePolicy({ allowed_kinds: 'all', encrypt: true, decrypt: true });
    assert.ok(full.can.some((l) => l.startsWith('Sign any event')));
    assert.ok(full.can.includes('Decrypt and read your private messages.'));
    assert.deepEqual(full.cannot, ['See or export your secret key.']);
    const social = describePolicy({ allowed_kinds: [0, 1, 40000], encrypt: false, decrypt: false });
    assert.ok(social.can.includes('Sign these events in your name: your profile (kind 0), short notes (kind 1), kind 40000.'));
    assert.ok(social.cannot.includes('Sign any other kind of event.'));
    assert.ok(social.cannot.includes('Encrypt messages as you (NIP-04, NIP-44).'));
  });

  it('reads relays one a line and refuses anything but ws:// and wss://', () => {
    assert.deepEqual(parseRelayLines(' wss://a.example \n\nwss://b.example/path\nwss://a.example'), ['wss://a.example', 'wss://b.example/path']);
    assert.deepEqual(parseRelayLines(''), []);
    assert.throws(() => parseRelayLines('https://a.example'), /not a ws:\/\/ or wss:\/\/ relay/);
    assert.throws(() => parseRelayLines(Array.from({ length: 21 }, (_, i) => `wss://r${i}.example`).join('\n')), /at most 20/);
  });
});
