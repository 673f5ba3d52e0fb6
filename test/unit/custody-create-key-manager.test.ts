import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createKeyManager,
  instrumentKeyManager,
  KeyManagerUnavailableError,
  type KeyManager,
} from '../../shared/custody/index.js';
import { metrics } from '../../shared/metrics.js';

async function calls(op: string, outcome: string): Promise<number> {
  const values = (await metrics.keyManagerCalls.get()).values;
  return values.find((v) => v.labels.op === op && v.labels.outcome === outcome)?.value ?? 0;
}

async function timed(op: string): Promise<number> {
  const values = (await metrics.keyManagerDuration.get()).values;
  return values.find((v) => v.labels.op === op && v.metricName?.endsWith('_count'))?.value ?? 0;
}

describe('createKeyManager', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kf-custody-create-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uses the local master key file when GCP_KMS_KEY is unset, instrumented', async () => {
    const file = path.join(dir, 'data', 'master.key');
    const km = await createKeyManager({ GCP_KMS_KEY: undefined, GCP_KMS_ENDPOINT: undefined, MASTER_KEY_PATH: file });
    assert.equal(km.kind, 'local');
    assert.match(km.kekId, /^local:[0-9a-f]{16}$/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    const before = {
      wrapOk: await calls('wrap', 'ok'),
      unwrapOk: await calls('unwrap', 'ok'),
      unwrapError: await calls('unwrap', 'error'),
      wrapTimed: await timed('wrap'),
    };
    const dek = randomBytes(32);
    const wrapped = await km.wrap(dek);
    assert.deepEqual(Buffer.from(await km.unwrap(wrapped, km.kekId)), dek);
    await assert.rejects(km.unwrap(wrapped, 'local:0000000000000000'));
    assert.equal(await calls('wrap', 'ok'), before.wrapOk + 1);
    assert.equal(await calls('unwrap', 'ok'), before.unwrapOk + 1);
    assert.equal(await calls('unwrap', 'error'), before.unwrapError + 1);
    assert.equal(await timed('wrap'), before.wrapTimed + 1);
    await km.close();
  });
});

describe('instrumentKeyManager', () => {
  it('counts an outage as "unavailable" and follows the inner KEK id', async () => {
    let kekId = 'gcp-kek-1';
    const inner: KeyManager = {
      kind: 'gcp',
      get kekId() {
        return kekId;
      },
      wrap: async () => {
        throw new KeyManagerUnavailableError('down');
      },
      unwrap: async () => new Uint8Array(32),
      close: async () => {},
    };
    const km = instrumentKeyManager(inner);
    const before = await calls('wrap', 'unavailable');
    await assert.rejects(km.wrap(new Uint8Array(32)), KeyManagerUnavailableError);
    assert.equal(await calls('wrap', 'unavailable'), before + 1);
    kekId = 'gcp-kek-2';
    assert.equal(km.kekId, 'gcp-kek-2');
  });
});
