// policyPermits, rule by rule: every method, the kinds of sign_event, the encrypt and decrypt rights
// apart, kind 22242 (relay AUTH), and each built-in policy as the migrations ship it (Keycast's social,
// readonly, wallet and full, and Keyfarm's messaging), against a table written out here by hand (not
// derived from the permissions under test).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { PolicyPermissions } from '../../database/queries/policies.js';
import { policyAllows } from '../../api/services/policy.js';
import type { RpcMethod } from '../../shared/farm/jobs.js';
import { callRefusal, contentBytes, countsAsUse, policyPermits, policyRefusal } from '../../shared/policy.js';
import { PROJECT_ROOT } from '../support/paths.js';

const METHODS: RpcMethod[] = [
  'get_public_key',
  'ping',
  'sign_event',
  'nip44_encrypt',
  'nip04_encrypt',
  'nip44_decrypt',
  'nip04_decrypt',
];
const ENCRYPT: RpcMethod[] = ['nip44_encrypt', 'nip04_encrypt'];
const DECRYPT: RpcMethod[] = ['nip44_decrypt', 'nip04_decrypt'];

const NOTHING: PolicyPermissions = { allowed_kinds: [], encrypt: false, decrypt: false };
const EVERYTHING: PolicyPermissions = { allowed_kinds: 'all', encrypt: true, decrypt: true };

/** The built-in policies as the migrations leave them: 0001 inserts them, 0003 (Keycast's) updates and adds. */
function builtInPolicies(): Map<string, PolicyPermissions> {
  const read = (file: string) => readFileSync(path.join(PROJECT_ROOT, 'database', 'migrations', file), 'utf8');
  const policies = new Map<string, PolicyPermissions>();
  for (const sql of [read('0001_init.sql'), read('0003_keycast.sql')]) {
    for (const m of sql.matchAll(/\(\s*'([a-z]+)',\s*'[^']*',\s*'[^']*',\s*'(\{[^']*\})'\)/g)) {
      policies.set(m[1]!, JSON.parse(m[2]!) as PolicyPermissions);
    }
    for (const m of sql.matchAll(/UPDATE policies SET[^;]*?permissions = '(\{[^']*\})'\s*WHERE slug = '([a-z]+)';/g)) {
      policies.set(m[2]!, JSON.parse(m[1]!) as PolicyPermissions);
    }
  }
  return policies;
}

describe('policyPermits', () => {
  it('always allows ping and get_public_key, even under a policy that allows nothing', () => {
    for (const method of ['ping', 'get_public_key'] as const) {
      assert.equal(policyPermits(NOTHING, method), true, method);
      assert.equal(policyPermits(EVERYTHING, method), true, method);
    }
  });

  it('denies every other method under a policy that allows nothing', () => {
    for (const method of METHODS.filter((m) => m !== 'ping' && m !== 'get_public_key')) {
      assert.equal(policyPermits(NOTHING, method, 1), false, method);
    }
  });

  it('allows every method under a policy that allows everything', () => {
    for (const method of METHODS) assert.equal(policyPermits(EVERYTHING, method, 1), true, method);
  });

  it('denies a method it does not know, whatever the policy', () => {
    for (const method of ['connect', 'logout', 'sign_everything', '']) {
      assert.equal(policyPermits(EVERYTHING, method as RpcMethod, 1), false, method);
    }
  });

  it('signs only the listed kinds, and nothing when the kind is unknown', () => {
    const p: PolicyPermissions = { allowed_kinds: [1, 7], encrypt: true, decrypt: true };
    assert.equal(policyPermits(p, 'sign_event', 1), true);
    assert.equal(policyPermits(p, 'sign_event', 7), true);
    for (const kind of [0, 2, 4, 6, 8, 22242, 65535])
      assert.equal(policyPermits(p, 'sign_event', kind), false, `kind ${kind}`);
    assert.equal(policyPermits(p, 'sign_event'), false, 'no kind given');
  });

  it('signs any kind under allowed_kinds "all"', () => {
    const p: PolicyPermissions = { allowed_kinds: 'all', encrypt: false, decrypt: false };
    for (const kind of [0, 1, 4, 22242, 30023, 65535])
      assert.equal(policyPermits(p, 'sign_event', kind), true, `kind ${kind}`);
  });

  it('grants encrypt and decrypt separately, for NIP-44 and NIP-04 alike', () => {
    const encryptOnly: PolicyPermissions = { allowed_kinds: [], encrypt: true, decrypt: false };
    const decryptOnly: PolicyPermissions = { allowed_kinds: [], encrypt: false, decrypt: true };
    for (const m of ENCRYPT) {
      assert.equal(policyPermits(encryptOnly, m), true, m);
      assert.equal(policyPermits(decryptOnly, m), false, m);
    }
    for (const m of DECRYPT) {
      assert.equal(policyPermits(encryptOnly, m), false, m);
      assert.equal(policyPermits(decryptOnly, m), true, m);
    }
    // Neither right lets an event be signed.
    assert.equal(policyPermits(encryptOnly, 'sign_event', 1), false);
    assert.equal(policyPermits(decryptOnly, 'sign_event', 4), false);
  });

  it('policyAllows passes the event kind of a sign_event call', () => {
    const p: PolicyPermissions = { allowed_kinds: [22242], encrypt: false, decrypt: false };
    const event = (kind: number) => ({ kind, content: '', tags: [], created_at: 1 });
    assert.equal(policyAllows(p, { method: 'sign_event', event: event(22242) }), true);
    assert.equal(policyAllows(p, { method: 'sign_event', event: event(1) }), false);
    assert.equal(policyAllows(p, { method: 'nip44_encrypt', peer: 'a'.repeat(64), plaintext: 'x' }), false);
    assert.equal(policyAllows(p, { method: 'get_public_key' }), true);
  });
});

describe('policyPermits with the custom fields', () => {
  const perNip: PolicyPermissions = {
    allowed_kinds: [1],
    encrypt: true,
    decrypt: true,
    nip44_encrypt: true,
    nip44_decrypt: false,
    nip04_encrypt: false,
    nip04_decrypt: true,
  };

  it('takes each NIP right on its own, over the general encrypt and decrypt', () => {
    assert.equal(policyPermits(perNip, 'nip44_encrypt'), true);
    assert.equal(policyPermits(perNip, 'nip44_decrypt'), false);
    assert.equal(policyPermits(perNip, 'nip04_encrypt'), false);
    assert.equal(policyPermits(perNip, 'nip04_decrypt'), true);
    // A per-NIP right granted where the general one is not.
    const only04: PolicyPermissions = { ...NOTHING, nip04_encrypt: true };
    assert.equal(policyPermits(only04, 'nip04_encrypt'), true);
    assert.equal(policyPermits(only04, 'nip44_encrypt'), false);
    assert.equal(policyPermits(only04, 'nip04_decrypt'), false);
  });

  it('falls back to encrypt and decrypt when a NIP right is absent (every built-in)', () => {
    const half: PolicyPermissions = { ...EVERYTHING, nip04_encrypt: false };
    assert.equal(policyPermits(half, 'nip04_encrypt'), false);
    assert.equal(policyPermits(half, 'nip44_encrypt'), true);
    assert.equal(policyPermits(half, 'nip04_decrypt'), true);
  });

  it('refuses content over max_content_bytes, counted in UTF-8 bytes, and only where content counts', () => {
    const p: PolicyPermissions = { ...EVERYTHING, max_content_bytes: 4 };
    assert.equal(policyPermits(p, 'sign_event', 1, 4), true);
    assert.equal(policyPermits(p, 'sign_event', 1, 5), false);
    assert.match(policyRefusal(p, 'nip44_encrypt', undefined, 5)!, /at most 4 bytes/);
    assert.equal(policyPermits(p, 'nip44_encrypt', undefined, 4), true);
    assert.equal(contentBytes('éé'), 4);
    assert.equal(contentBytes('ééé'), 6);
    const event = (content: string) => ({ kind: 1, content, tags: [], created_at: 1 });
    assert.equal(callRefusal(p, { method: 'sign_event', event: event('éé') }), undefined);
    assert.match(callRefusal(p, { method: 'sign_event', event: event('ééé') })!, /content too large/);
    assert.match(callRefusal(p, { method: 'nip04_encrypt', peer: 'a'.repeat(64), plaintext: 'abcde' })!, /too large/);
    // A ciphertext to decrypt is not content the limit counts.
    assert.equal(
      callRefusal(p, { method: 'nip44_decrypt', peer: 'a'.repeat(64), ciphertext: 'x'.repeat(100) }),
      undefined,
    );
    // Without a limit, any size passes.
    assert.equal(policyPermits(EVERYTHING, 'sign_event', 1, 10_000_000), true);
  });

  it('says a denied method in the words both doors answer with', () => {
    assert.equal(policyRefusal(NOTHING, 'sign_event', 1, 1), 'Operation denied by policy');
    assert.equal(policyRefusal({ ...NOTHING, max_content_bytes: 0 }, 'sign_event', 1, 1), 'Operation denied by policy');
  });

  it('counts key operations as uses, not ping or get_public_key', () => {
    for (const m of METHODS) assert.equal(countsAsUse(m), m !== 'ping' && m !== 'get_public_key', m);
  });
});

describe('the built-in policies', () => {
  const builtIn = builtInPolicies();
  const permits = (slug: string, method: RpcMethod, kind?: number) => policyPermits(builtIn.get(slug)!, method, kind);

  /** What each built-in policy must allow and deny, written out by hand. */
  const expected: Record<string, { signs: number[]; refuses: number[]; encrypt: boolean; decrypt: boolean }> = {
    // Keycast's social: notes, profile, follows, reactions, private messages (4, 44, 1059), zap receipts, relay AUTH.
    social: {
      signs: [0, 1, 3, 4, 7, 44, 1059, 9735, 22242],
      refuses: [5, 6, 13, 14, 16, 1111, 9734, 10002, 30023, 2, 9999],
      encrypt: true,
      decrypt: true,
    },
    // Keycast's readonly: reads private messages and authenticates to relays, nothing else.
    readonly: {
      signs: [22242],
      refuses: [0, 1, 3, 4, 7, 14, 44, 1059, 9734, 24242, 27235],
      encrypt: false,
      decrypt: true,
    },
    messaging: {
      signs: [4, 13, 14, 15, 1059, 10050, 22242],
      refuses: [0, 1, 3, 6, 7, 30023],
      encrypt: true,
      decrypt: true,
    },
    // Keycast's wallet signs zap requests; Keyfarm adds relay AUTH and no messages.
    wallet: {
      signs: [9734, 22242],
      refuses: [0, 1, 3, 4, 7, 44, 1059, 9735, 23194, 23195],
      encrypt: false,
      decrypt: false,
    },
    full: { signs: [0, 1, 4, 14, 1059, 22242, 30023, 65535], refuses: [], encrypt: true, decrypt: true },
  };

  it('are exactly social, readonly, messaging, wallet and full', () => {
    assert.deepEqual([...builtIn.keys()].sort(), Object.keys(expected).sort());
  });

  for (const [slug, want] of Object.entries(expected)) {
    it(`${slug}: signs what it should, refuses the rest, and has the right encrypt and decrypt rights`, () => {
      for (const kind of want.signs)
        assert.equal(permits(slug, 'sign_event', kind), true, `${slug} signs kind ${kind}`);
      for (const kind of want.refuses)
        assert.equal(permits(slug, 'sign_event', kind), false, `${slug} refuses kind ${kind}`);
      for (const m of ENCRYPT) assert.equal(permits(slug, m), want.encrypt, `${slug} ${m}`);
      for (const m of DECRYPT) assert.equal(permits(slug, m), want.decrypt, `${slug} ${m}`);
      assert.equal(permits(slug, 'ping'), true);
      assert.equal(permits(slug, 'get_public_key'), true);
    });
  }

  it('every built-in policy lets a client authenticate to relays (kind 22242)', () => {
    for (const slug of builtIn.keys()) assert.equal(permits(slug, 'sign_event', 22242), true, slug);
  });

  it('readonly signs nothing but relay AUTH and only reads messages', () => {
    assert.deepEqual(builtIn.get('readonly'), { allowed_kinds: [22242], encrypt: false, decrypt: true });
  });
});
