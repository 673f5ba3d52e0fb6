// Bearer secrets: each kind has its prefix (so a leaked token says what it is, and secret scanners can
// find it), 256 random bits, and only a SHA-256 of it is stored.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { hashToken, newToken } from '../../api/services/tokens.js';

describe('tokens', () => {
  it('gives each kind its prefix and 32 random bytes (base64url, mailed links too; hex for bunker secrets and handles; codes alphanumeric, as Keycast)', () => {
    const forms = {
      session: /^kfs_[A-Za-z0-9_-]{43}$/,
      code: /^[A-Za-z0-9]{43}$/,
      access: /^kfa_[A-Za-z0-9_-]{43}$/,
      refresh: /^kfr_[A-Za-z0-9_-]{43}$/,
      'bunker-secret': /^[0-9a-f]{64}$/,
      handle: /^[0-9a-f]{64}$/,
      'email-verify': /^kfv_[A-Za-z0-9_-]{43}$/,
      'password-reset': /^kfp_[A-Za-z0-9_-]{43}$/,
    } as const;
    for (const [kind, form] of Object.entries(forms)) {
      const a = newToken(kind as keyof typeof forms);
      assert.match(a, form, kind);
      assert.notEqual(newToken(kind as keyof typeof forms), a, `${kind} tokens are random`);
    }
  });

  it('hashes with SHA-256', () => {
    assert.deepEqual(hashToken('kfs_x'), createHash('sha256').update('kfs_x').digest());
  });
});
