// Where the crypto runs must not change what a client gets: the native backend with the crypto lane (the
// default), with the curve work on the event loop (CRYPTO_LANE_THREADS=0), and the WASM fallback on the
// pool each sign (small events and one large enough to go whole to the pool) and encrypt through the
// HTTP API, every signature valid for the user's key.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { generateSecretKey, getPublicKey, nip44, verifyEvent } from 'nostr-tools';
import { bytesToHex } from '@noble/hashes/utils.js';
import { cryptoBackend, useCryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { INLINE_MAX_TEXT } from '../../workers/crypto/inline-runner.js';
import { authorizeApp, registerUser, rpc } from '../support/client.js';
import { startTestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

const PLACEMENTS: [string, Record<string, string>, string][] = [
  ['native, curve work on the crypto lane', {}, 'native'],
  ['native, curve work on the event loop', { CRYPTO_LANE_THREADS: '0' }, 'native'],
  ['WASM fallback, on the pool', { CRYPTO_BACKEND: 'wasm' }, 'wasm'],
];

describe('the crypto gives the same answers wherever it runs', () => {
  after(() => void useCryptoBackend('auto'));

  for (const [name, overrides, backend] of PLACEMENTS)
    it(name, async () => {
      const farm = await startTestFarm('crypto-placement', { CRYPTO_THREADS: '1', ...overrides });
      try {
        assert.equal(cryptoBackend().name, backend);
        const user = await registerUser(farm.url);
        const { access_token: token } = await authorizeApp(farm.url, user.session);
        const now = Math.floor(Date.now() / 1000);
        const contents = ['a', 'b', 'c', 'x'.repeat(INLINE_MAX_TEXT + 1)];
        const signed = await Promise.all(
          contents.map((content) =>
            rpc(farm.url, token, 'sign_event', [{ kind: 1, content, tags: [], created_at: now }]),
          ),
        );
        for (const [i, r] of signed.entries()) {
          assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 200));
          assert.equal(r.body.result.pubkey, user.pubkey);
          assert.equal(r.body.result.content, contents[i]);
          assert.ok(verifyEvent(r.body.result), 'a valid signature by the user key');
        }
        const peer = generateSecretKey();
        recordSecret(bytesToHex(peer));
        const enc = await rpc(farm.url, token, 'nip44_encrypt', [getPublicKey(peer), 'to the peer']);
        assert.equal(enc.status, 200);
        const conv = nip44.v2.utils.getConversationKey(peer, user.pubkey);
        assert.equal(nip44.v2.decrypt(enc.body.result, conv), 'to the peer');
        const dec = await rpc(farm.url, token, 'nip44_decrypt', [getPublicKey(peer), nip44.v2.encrypt('back', conv)]);
        assert.deepEqual([dec.status, dec.body.result], [200, 'back']);
        const badPeer = await rpc(farm.url, token, 'nip44_encrypt', ['f'.repeat(64), 'x']);
        assert.equal(badPeer.status, 400, 'a peer key off the curve is refused');
      } finally {
        await farm.stop();
      }
    });
});
