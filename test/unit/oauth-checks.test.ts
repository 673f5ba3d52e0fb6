// The OAuth input checks that need no database: which redirect URIs an app may use, how a scope names a
// policy, and the PKCE S256 challenge (RFC 7636's own example).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRedirectUri, pkceChallengeOf, policySlugOfScope } from '../../api/services/oauth.js';
import { OAuthError } from '../../api/errors.js';

function refusedAs(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OAuthError, String(err));
    assert.equal(err.statusCode, 400);
    assert.equal(err.code, code);
    assert.match(err.description, message);
    return true;
  });
}

describe('checkRedirectUri', () => {
  it('accepts https anywhere and http only on the loopback names', () => {
    for (const uri of [
      'https://app.example/cb',
      'https://app.example:8443/cb?x=1',
      'http://localhost:3000/cb',
      'http://127.0.0.1/cb',
      'http://[::1]:8080/cb',
    ]) {
      assert.equal(checkRedirectUri(uri).href, new URL(uri).href, uri);
    }
  });

  it('refuses http off the loopback, other schemes, fragments and what is not a URL', () => {
    for (const uri of [
      'http://app.example/cb',
      'http://localhost.evil.example/cb',
      'http://127.0.0.2/cb',
      'http://10.0.0.1/cb',
    ]) {
      refusedAs(() => checkRedirectUri(uri), 'invalid_request', /^redirect_uri must be https, or http on localhost$/);
    }
    for (const uri of ['javascript:alert(1)', 'ftp://app.example/cb', 'data:text/html,x', 'app.example://cb']) {
      refusedAs(() => checkRedirectUri(uri), 'invalid_request', /^redirect_uri must be https, or http on localhost$/);
    }
    refusedAs(
      () => checkRedirectUri('https://app.example/cb#frag'),
      'invalid_request',
      /^redirect_uri must not have a fragment$/,
    );
    refusedAs(
      () => checkRedirectUri('http://localhost/cb#frag'),
      'invalid_request',
      /^redirect_uri must not have a fragment$/,
    );
    refusedAs(() => checkRedirectUri('not a url'), 'invalid_request', /^redirect_uri is not a valid URL$/);
  });

  it('refuses other schemes on the loopback names too: only http is let through there', () => {
    for (const uri of ['ftp://localhost/cb', 'ws://127.0.0.1:8080/cb', 'file://localhost/etc/passwd']) {
      refusedAs(() => checkRedirectUri(uri), 'invalid_request', /^redirect_uri must be https, or http on localhost$/);
    }
  });

  it('refuses a user name or a password in the URL, each on its own', () => {
    for (const uri of [
      'https://user:pw@app.example/cb',
      'https://user@app.example/cb',
      'https://:pw@app.example/cb',
      'http://user@localhost/cb',
    ]) {
      refusedAs(
        () => checkRedirectUri(uri),
        'invalid_request',
        /^redirect_uri must not carry a user name or password$/,
      );
    }
  });

  it('refuses a host the URL parser takes but a header must not carry', () => {
    for (const uri of ['https://app_name.example/cb', 'https://a*b.example/cb']) {
      assert.doesNotThrow(() => new URL(uri), uri);
      refusedAs(
        () => checkRedirectUri(uri),
        'invalid_request',
        /^redirect_uri must have a plain host name \(letters, digits, dots and hyphens\) or an IP address$/,
      );
    }
  });
});

describe('policySlugOfScope', () => {
  it("reads policy:<slug> or the slug alone; no scope is social (Keycast's default), never full", () => {
    assert.equal(policySlugOfScope(undefined), 'social');
    assert.equal(policySlugOfScope(''), 'social');
    assert.equal(policySlugOfScope('  \t '), 'social', 'blank is no scope');
    assert.equal(policySlugOfScope('policy:readonly'), 'readonly');
    assert.equal(policySlugOfScope('messaging'), 'messaging');
    assert.equal(policySlugOfScope('  policy:my_policy-2  '), 'my_policy-2');
    assert.equal(policySlugOfScope(`policy:${'a'.repeat(64)}`), 'a'.repeat(64));
  });

  it('refuses anything else with invalid_scope', () => {
    for (const scope of [
      'policy:',
      'policy:Full',
      'policy:full extra',
      'policy:full\nx',
      'x policy:full',
      'policy:a/b',
      `policy:${'a'.repeat(65)}`,
      'scope:full',
      'policy:policy:full',
    ]) {
      refusedAs(() => policySlugOfScope(scope), 'invalid_scope', /^scope must be policy:<slug>$/);
    }
  });
});

describe('pkceChallengeOf', () => {
  it('is BASE64URL(SHA256(verifier)), as in RFC 7636 appendix B', () => {
    assert.equal(
      pkceChallengeOf('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'),
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
  });
});
