// Which backend a process runs on, and how it says so: a missing libsecp256k1 falls back to WASM with one
// warning at start and the metric keyfarm_crypto_backend{backend="wasm"} at 1; CRYPTO_BACKEND=native
// refuses to start instead; the pool threads take the process's backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { registry } from '../../shared/metrics.js';
import { cryptoBackend, loadNativeBackend, useCryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { finalizeEvent, verifyEvent } from '../../shared/nostr/event.js';
import { parseConfig } from '../../shared/config.js';
import { startCryptoBackend } from '../../workers/crypto/backend.js';
import { CryptoPool } from '../../workers/crypto/pool.js';

const MISSING = ['libsecp256k1-keyfarm-test-missing.so.9'];

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

async function backendGauge(): Promise<Record<string, number>> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'keyfarm_crypto_backend');
  return Object.fromEntries((m?.values ?? []).map((v) => [String(v.labels.backend), Number(v.value)]));
}

test('without the library, auto falls back to WASM, warns once with the reason, and the metric says wasm', async () => {
  const { lines, logger } = capture();
  try {
    const backend = startCryptoBackend('auto', logger, (c) => useCryptoBackend(c, () => loadNativeBackend(MISSING)));
    assert.equal(backend.name, 'wasm');
    assert.equal(cryptoBackend().name, 'wasm');
    await new Promise((r) => setImmediate(r));
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!.msg), /WASM build/);
    assert.match(String(warnings[0]!.reason), /libsecp256k1 not found/);
    assert.deepEqual(await backendGauge(), { native: 0, wasm: 1 });
    const sk = generateSecretKey();
    assert.ok(
      verifyEvent(finalizeEvent({ kind: 1, content: 'on wasm', tags: [], created_at: 1 }, sk, getPublicKeyHex(sk))),
    );
  } finally {
    useCryptoBackend('auto');
  }
});

test('CRYPTO_BACKEND=native without the library refuses to start, naming the cause', () => {
  const { logger } = capture();
  assert.throws(
    () => startCryptoBackend('native', logger, (c) => useCryptoBackend(c, () => loadNativeBackend(MISSING))),
    /CRYPTO_BACKEND=native: libsecp256k1 not found/,
  );
});

test('with the library, auto runs native, logs it at info, and the metric says native', async () => {
  const { lines, logger } = capture();
  const backend = startCryptoBackend('auto', logger);
  assert.equal(backend.name, 'native');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.filter((l) => l.level === 40).length, 0);
  assert.equal(lines.filter((l) => l.msg === 'crypto backend' && l.backend === 'native').length, 1);
  assert.deepEqual(await backendGauge(), { native: 1, wasm: 0 });
});

test('CRYPTO_BACKEND is auto by default and a bad value stops the start naming it', () => {
  assert.equal(parseConfig({}).CRYPTO_BACKEND, 'auto');
  assert.equal(parseConfig({ CRYPTO_BACKEND: 'wasm' }).CRYPTO_BACKEND, 'wasm');
  assert.throws(() => parseConfig({ CRYPTO_BACKEND: 'openssl' }), /CRYPTO_BACKEND/);
});

for (const name of ['native', 'wasm'] as const) {
  test(`${name}: the pool threads sign with the backend given and accept its key material`, async () => {
    useCryptoBackend(name);
    const pool = new CryptoPool({ threads: 1 });
    try {
      const sk = generateSecretKey();
      const pubkey = getPublicKeyHex(sk);
      const material = cryptoBackend().keyMaterial(sk);
      const [r] = await pool.run([
        { op: 'sign_event', sk: material, pubkey, event: { kind: 1, content: name, tags: [], created_at: 1 } },
      ]);
      assert.ok(r?.ok, JSON.stringify(r));
      assert.ok(verifyEvent(r.value as never));
    } finally {
      await pool.close();
      useCryptoBackend('auto');
    }
  });
}
