// GcpKeyManager through the real @google-cloud/kms client against the local fake KMS (no Google network).
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { grpc } from 'google-gax';
import { GcpKeyManager, parseHostPort } from '../../shared/custody/gcp-key-manager.js';
import { KeyManagerUnavailableError } from '../../shared/custody/key-manager.js';
import { WrappedDekRejectedError } from '../../shared/custody/errors.js';
import { openSecret, ownerAad, rewrapSecret, sealSecret } from '../../shared/custody/envelope.js';
import { createKeyManager } from '../../shared/custody/index.js';
import { metrics } from '../../shared/metrics.js';
import { startFakeKms, type FakeKms } from '../support/fake-kms.js';
import { keyManagerContract } from '../support/key-manager-contract.js';

// Were anything to look for Application Default Credentials, it would find this and fail.
process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/keyfarm-test-credentials.json';

const KEY_A = 'projects/keyfarm-test/locations/global/keyRings/custody/cryptoKeys/kek-a';
const KEY_B = 'projects/keyfarm-test/locations/global/keyRings/custody/cryptoKeys/kek-b';

keyManagerContract('GcpKeyManager (fake KMS)', async () => {
  const kms = await startFakeKms();
  const km = new GcpKeyManager({ keyName: KEY_A, endpoint: kms.endpoint });
  return {
    km,
    cleanup: async () => {
      await km.close();
      await kms.close();
    },
  };
});

describe('GcpKeyManager against the fake KMS', () => {
  let kms: FakeKms;
  let km: GcpKeyManager;
  before(async () => {
    kms = await startFakeKms();
    km = new GcpKeyManager({ keyName: KEY_A, endpoint: kms.endpoint });
    await km.wrap(randomBytes(32)); // connect once, so timings below measure retries only
  });
  after(async () => {
    await km.close();
    await kms.close();
  });
  beforeEach(() => kms.resetCalls());

  it('round-trips a DEK with one Encrypt and one Decrypt, ciphertexts differing per call', async () => {
    const dek = randomBytes(32);
    const a = await km.wrap(dek);
    const b = await km.wrap(dek);
    assert.notDeepEqual(Buffer.from(a), Buffer.from(b));
    assert.deepEqual(Buffer.from(await km.unwrap(a, KEY_A)), dek);
    assert.equal(kms.callCount('encrypt'), 2);
    assert.equal(kms.callCount('decrypt'), 1);
    assert.equal(km.kind, 'gcp');
    assert.equal(km.kekId, KEY_A);
  });

  it('retries transient failures after 100, 200 and 400 ms, then succeeds', async () => {
    kms.failNext(3, grpc.status.UNAVAILABLE);
    const started = performance.now();
    const dek = randomBytes(32);
    const wrapped = await km.wrap(dek);
    const elapsed = performance.now() - started;
    assert.equal(kms.callCount(), 4);
    assert.deepEqual(
      kms.calls.map((c) => c.code),
      [14, 14, 14, 0],
    );
    const gaps = kms.calls.slice(1).map((c, i) => c.at - kms.calls[i]!.at);
    [100, 200, 400].forEach((delay, i) => {
      assert.ok(
        gaps[i]! >= delay - 2 && gaps[i]! < delay + 250,
        `gap ${i + 1} was ${gaps[i]!.toFixed(1)} ms, expected about ${delay}`,
      );
    });
    assert.ok(elapsed >= 698 && elapsed < 1500, `took ${elapsed.toFixed(0)} ms, expected about 700`);
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, KEY_A)), dek);
  });

  it('retries Decrypt the same way (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED)', async () => {
    const dek = randomBytes(32);
    const wrapped = await km.wrap(dek);
    kms.resetCalls();
    kms.failNext(2, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, KEY_A)), dek);
    assert.equal(kms.callCount('decrypt'), 3);
    kms.resetCalls();
    kms.failNext(1, grpc.status.DEADLINE_EXCEEDED);
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, KEY_A)), dek);
    assert.equal(kms.callCount('decrypt'), 2);
  });

  it('gives up with KeyManagerUnavailableError after 4 failed attempts', async () => {
    kms.failNext(4, grpc.status.UNAVAILABLE);
    const started = performance.now();
    await assert.rejects(km.wrap(randomBytes(32)), (err: Error) => {
      assert.ok(err instanceof KeyManagerUnavailableError);
      assert.match(err.message, /after 4 attempts: UNAVAILABLE/);
      return true;
    });
    assert.ok(performance.now() - started >= 698);
    assert.equal(kms.callCount(), 4);
    // The fault has passed: the next call goes through at once.
    await km.wrap(randomBytes(32));
    assert.equal(kms.callCount(), 5);
  });

  for (const code of [grpc.status.PERMISSION_DENIED, grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT]) {
    it(`does not retry a permanent ${grpc.status[code]}`, async () => {
      kms.failNext(1, code);
      await assert.rejects(km.wrap(randomBytes(32)), (err: Error) => {
        assert.ok(err instanceof KeyManagerUnavailableError);
        assert.match(err.message, new RegExp(`refused encrypt: ${grpc.status[code]}`));
        return true;
      });
      assert.equal(kms.callCount(), 1);
    });
  }

  it('reports an altered or foreign wrapped DEK as rejected, without retrying', async () => {
    const wrapped = Buffer.from(await km.wrap(randomBytes(32)));
    kms.resetCalls();
    wrapped[wrapped.length - 3]! ^= 0x40;
    await assert.rejects(km.unwrap(wrapped, KEY_A), WrappedDekRejectedError);
    assert.equal(kms.callCount(), 1);
  });

  it('discards a response whose CRC32C does not match and retries it', async () => {
    kms.corruptNextChecksum();
    const dek = randomBytes(32);
    const wrapped = await km.wrap(dek);
    assert.equal(kms.callCount('encrypt'), 2);
    kms.corruptNextChecksum();
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, KEY_A)), dek);
    assert.equal(kms.callCount('decrypt'), 2);
  });

  it('unwraps rows under an older key and re-wraps them to the current one', async () => {
    const old = new GcpKeyManager({ keyName: KEY_B, endpoint: kms.endpoint });
    const secret = randomBytes(32);
    const aad = ownerAad('user', 'rotated');
    const sealed = await sealSecret(old, secret, aad);
    assert.equal(sealed.kekId, KEY_B);
    // The ciphertext names the key that made it: KEY_A cannot decrypt it.
    await assert.rejects(km.unwrap(sealed.wrappedDek, KEY_A), WrappedDekRejectedError);
    assert.deepEqual(Buffer.from(await openSecret(km, sealed, aad)), secret);
    const moved = await rewrapSecret(km, sealed);
    assert.equal(moved.kekId, KEY_A);
    assert.deepEqual(moved.ciphertext, sealed.ciphertext);
    assert.deepEqual(Buffer.from(await openSecret(km, moved, aad)), secret);
    await old.close();
  });

  it('refuses a key name that is not a CryptoKey and a malformed endpoint', () => {
    assert.throws(() => new GcpKeyManager({ keyName: 'projects/p/keyRings/r', endpoint: kms.endpoint }), /cryptoKeys/);
    assert.throws(() => new GcpKeyManager({ keyName: KEY_A, endpoint: 'localhost' }), /host:port/);
    assert.deepEqual(parseHostPort('[::1]:8443'), { host: '::1', port: 8443 });
    assert.deepEqual(parseHostPort('kms.local:7000'), { host: 'kms.local', port: 7000 });
  });
});

describe('createKeyManager', () => {
  let kms: FakeKms;
  before(async () => {
    kms = await startFakeKms();
  });
  after(async () => {
    await kms.close();
  });

  it('picks Cloud KMS when GCP_KMS_KEY is set and records calls and latency', async () => {
    const km = await createKeyManager({
      GCP_KMS_KEY: KEY_A,
      GCP_KMS_ENDPOINT: kms.endpoint,
      MASTER_KEY_PATH: '/nonexistent/master.key',
    });
    assert.equal(km.kind, 'gcp');
    assert.equal(km.kekId, KEY_A);
    const count = async (op: string, outcome: string) =>
      (await metrics.keyManagerCalls.get()).values.find((v) => v.labels.op === op && v.labels.outcome === outcome)
        ?.value ?? 0;
    const durations = async () =>
      (await metrics.keyManagerDuration.get()).values.find(
        (v) => v.labels.op === 'unwrap' && v.metricName?.endsWith('_count'),
      )?.value ?? 0;
    const [wrapOk, unwrapOk, unwrapUnavailable, unwrapTimed] = [
      await count('wrap', 'ok'),
      await count('unwrap', 'ok'),
      await count('unwrap', 'unavailable'),
      await durations(),
    ];
    const dek = randomBytes(32);
    const wrapped = await km.wrap(dek);
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, km.kekId)), dek);
    kms.failNext(1, grpc.status.PERMISSION_DENIED);
    await assert.rejects(km.unwrap(wrapped, km.kekId), KeyManagerUnavailableError);
    assert.equal(await count('wrap', 'ok'), wrapOk + 1);
    assert.equal(await count('unwrap', 'ok'), unwrapOk + 1);
    assert.equal(await count('unwrap', 'unavailable'), unwrapUnavailable + 1);
    assert.equal(await durations(), unwrapTimed + 2);
    await km.close();
  });
});
