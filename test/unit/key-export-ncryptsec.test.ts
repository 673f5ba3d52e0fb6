// The ncryptsec of a key export (NIP-49) opens with the passphrase under another implementation
// (nostr-tools), only with that passphrase, and carries the version, cost and key-security byte it must.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { decrypt } from 'nostr-tools/nip49';
import { bech32 } from '@scure/base';
import type { ApiContext } from '../../api/context.js';
import { HttpError } from '../../api/errors.js';
import {
  MIN_PASSPHRASE_LENGTH,
  NCRYPTSEC_LOG_N,
  encryptNcryptsec,
  exportUserKey,
} from '../../api/services/key-export.js';
import { recordSecret } from '../support/logs.js';

// A low scrypt cost keeps the test fast; the exported default is checked apart.
const LOG_N = 4;

describe('key export ncryptsec (NIP-49)', () => {
  it('opens under nostr-tools with the passphrase (NFKC), and not with another', async () => {
    const secret = new Uint8Array(randomBytes(32));
    recordSecret(Buffer.from(secret).toString('hex'));
    // U+212B ANGSTROM SIGN normalises (NFKC) to U+00C5, as NIP-49 requires of both sides.
    const ncryptsec = recordSecret(await encryptNcryptsec(secret, 'pass\u212Bphrase', LOG_N));
    assert.match(ncryptsec, /^ncryptsec1/);
    assert.deepEqual(decrypt(ncryptsec, 'pass\u00C5phrase'), secret);
    assert.throws(() => decrypt(ncryptsec, 'another passphrase'));
  });

  it('writes version 2, the log N it used, a fresh salt and nonce, and key security byte 2', async () => {
    const secret = new Uint8Array(32).fill(7);
    // @scure/base is nostr-tools' own bech32; nip19's decode() does not take the ncryptsec prefix.
    const payload = async () =>
      bech32.fromWords(
        bech32.decode((await encryptNcryptsec(secret, 'passphrase', LOG_N)) as `${string}1${string}`, 5000).words,
      );
    const a = await payload();
    const b = await payload();
    assert.equal(a.length, 91);
    assert.equal(a[0], 0x02);
    assert.equal(a[1], LOG_N);
    assert.equal(a[42], 0x02);
    assert.notDeepEqual(a.subarray(2, 42), b.subarray(2, 42), 'salt and nonce are random');
    assert.equal(NCRYPTSEC_LOG_N, 16);
  });
});

describe('key export passphrase minimum', () => {
  it('is refused by the service itself, whoever calls it, before the account or its key is read', async () => {
    // Every use of the context fails the test: the refusal comes before any of it.
    const untouchable = new Proxy(
      {},
      { get: (_t, name) => assert.fail(`the context was read (${String(name)})`) },
    ) as ApiContext;
    const input = { userId: '00000000-0000-4000-8000-000000000000', password: 'pw', ip: '192.0.2.1' };
    await assert.rejects(exportUserKey(untouchable, { ...input, passphrase: 'seven77' }), (err: unknown) => {
      assert.ok(err instanceof HttpError, String(err));
      assert.equal(err.statusCode, 400);
      assert.equal(err.message, `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`);
      return true;
    });
    assert.equal(MIN_PASSPHRASE_LENGTH, 8);
  });
});
