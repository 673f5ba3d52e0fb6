// Where a session route reads its credential: the Bearer header (one token, nothing else on the line),
// else the session cookie; and the cap on what is looked up at all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../api/context.js';
import {
  SESSION_COOKIE,
  bearerToken,
  clearSessionCookie,
  sessionToken,
  sessionUser,
  setSessionCookie,
} from '../../api/plugins/session.js';
import { SESSION_TTL_MS } from '../../api/services/accounts.js';

function request(authorization?: string, cookie?: string): FastifyRequest {
  return {
    headers: authorization === undefined ? {} : { authorization },
    cookies: cookie === undefined ? {} : { [SESSION_COOKIE]: cookie },
  } as unknown as FastifyRequest;
}

describe('session credentials', () => {
  it('reads one Bearer token, in any case of the scheme, with surrounding spaces', () => {
    assert.equal(bearerToken(request('Bearer kfs_abc')), 'kfs_abc');
    assert.equal(bearerToken(request('bearer   kfs_abc  ')), 'kfs_abc');
    assert.equal(bearerToken(request('BEARER kfs_abc')), 'kfs_abc');
  });

  it('takes nothing from other schemes, two tokens, or a token glued to the scheme', () => {
    for (const header of [
      '',
      'Basic a2ZzX2FiYw==',
      'Bearer',
      'Bearer ',
      'Bearerkfs_abc',
      'Bearer kfs_a kfs_b',
      'x Bearer kfs_abc',
      'Token kfs_abc',
    ]) {
      assert.equal(bearerToken(request(header)), undefined, JSON.stringify(header));
    }
  });

  it('prefers the Bearer header to the cookie and falls back to the cookie', () => {
    assert.equal(sessionToken(request('Bearer from-header', 'from-cookie')), 'from-header');
    assert.equal(sessionToken(request(undefined, 'from-cookie')), 'from-cookie');
    assert.equal(sessionToken(request('Basic x', 'from-cookie')), 'from-cookie');
    assert.equal(sessionToken(request()), undefined);
  });

  it('looks up no token that is empty or longer than 512 characters, and sets nothing on the request', async () => {
    // Any database access fails the test: these tokens must be refused before a lookup.
    const ctx = { db: new Proxy({}, { get: () => assert.fail('the database was asked') }) } as unknown as ApiContext;
    for (const token of ['', 'x'.repeat(513)]) {
      const req = request(undefined, token);
      assert.equal(await sessionUser(ctx, req), undefined);
      assert.equal(req.userId, undefined);
      assert.equal(req.sessionToken, undefined);
    }
  });
});

describe('session cookie', () => {
  function reply() {
    const calls: unknown[][] = [];
    const r = {
      setCookie: (...args: unknown[]) => calls.push(['set', ...args]),
      clearCookie: (...args: unknown[]) => calls.push(['clear', ...args]),
    };
    return { r: r as unknown as FastifyReply, calls };
  }

  it('is HttpOnly, SameSite=Lax, site-wide, lives as long as the session, and Secure behind https', () => {
    for (const [url, secure] of [
      ['https://keys.example', true],
      ['http://127.0.0.1:3000', false],
    ] as const) {
      const { r, calls } = reply();
      setSessionCookie({ config: { PUBLIC_URL: url } } as unknown as ApiContext, r, 'kfs_token');
      assert.deepEqual(calls, [
        [
          'set',
          SESSION_COOKIE,
          'kfs_token',
          { path: '/', httpOnly: true, sameSite: 'lax', secure, maxAge: Math.floor(SESSION_TTL_MS / 1000) },
        ],
      ]);
    }
  });

  it('is cleared on the path it was set on', () => {
    const { r, calls } = reply();
    clearSessionCookie(r);
    assert.deepEqual(calls, [['clear', SESSION_COOKIE, { path: '/' }]]);
  });
});
