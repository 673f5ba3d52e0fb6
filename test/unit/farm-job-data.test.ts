// A job's data as its stream entry holds it (shared/farm/job-data.ts): an RPC job's items written
// positionally and read back as they were, data of the earlier named form read the same, and what is not
// a job's data passed through for the worker to refuse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJobData, encodeJobData } from '../../shared/farm/job-data.js';
import type { JobData, RpcJobData } from '../../shared/farm/jobs.js';
import { recordData } from '../../shared/farm/shard-queue.js';

const rpc: RpcJobData = {
  type: 'rpc',
  replyTo: 'api-1',
  door: 'http',
  items: Array.from({ length: 3 }, (_, i) => ({
    id: `Ab3.${i}`,
    traceId: `00000000-0000-4000-8000-00000000000${i}`,
    authorizationId: `auth-${i}`,
    keyId: `key-${i}`,
    pubkey: String(i).repeat(64),
    method: i === 2 ? ('nip44_encrypt' as const) : ('sign_event' as const),
  })),
  calls: 'kfsealed1:c2VhbGVk',
};

test('an RPC job round-trips, its items without their names', () => {
  const text = encodeJobData(rpc);
  assert.deepEqual(decodeJobData(text), rpc);
  const named = JSON.stringify(rpc);
  assert.ok(!text.includes('"authorizationId"') && !text.includes('"pubkey"'), text);
  assert.ok(text.length <= named.length - 3 * 50, `${text.length} bytes against ${named.length}`);
  assert.deepEqual(Object.keys(JSON.parse(text) as object), ['type', 'replyTo', 'door', 'items', 'calls']);
});

test('data of the named form, and NIP-46 data, read as written', () => {
  assert.deepEqual(decodeJobData(JSON.stringify(rpc)), rpc);
  const nip46: JobData = { type: 'nip46', replyTo: 'relay-1', items: [] };
  assert.equal(encodeJobData(nip46), JSON.stringify(nip46));
  assert.deepEqual(decodeJobData(encodeJobData(nip46)), nip46);
});

test('what is not a packed item stays as it is; what is not JSON throws', () => {
  const odd = JSON.stringify({ type: 'rpc', items: [['a', 'b'], ['a', 'b', 'c', 'd', 'e', 7], null, 'x'] });
  assert.deepEqual(decodeJobData(odd), JSON.parse(odd));
  assert.deepEqual(decodeJobData('"text"'), 'text');
  assert.throws(() => decodeJobData('{"items":'), SyntaxError);
});

test("a finished record keeps each item's id, method and trace id from the packed form", () => {
  assert.deepEqual(recordData(encodeJobData(rpc)), {
    type: 'rpc',
    replyTo: 'api-1',
    door: 'http',
    items: rpc.items.map(({ id, method, traceId }) => ({ id, method, traceId })),
  });
});
