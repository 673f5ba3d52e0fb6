// The pieces of approval per request that need no server: the wait an app may ask for, the policy check
// with grants and `ask`, and the keyed hash that matches an HTTP call sent again.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { requestedWait } from '../../api/services/approvals.js';
import {
  callHash,
  newApprovalId,
  openSummary,
  sealSummary,
  summarize,
  APPROVAL_ID_PATTERN,
} from '../../shared/approvals.js';
import type { RpcCall } from '../../shared/farm/jobs.js';
import { PayloadSealer } from '../../shared/farm/payload-seal.js';
import { policyAsks, policyPermits } from '../../shared/policy.js';

const sign = (kind: number, content = 'hi'): RpcCall => ({
  method: 'sign_event',
  event: { kind, content, tags: [], created_at: 1 },
});

describe('approvals', () => {
  it('Prefer: wait=N is read, bounded by the setting, and absent means no wait', () => {
    assert.equal(requestedWait('wait=5', 60), 5);
    assert.equal(requestedWait('respond-async, wait=100', 60), 60);
    assert.equal(requestedWait(['handling=lenient', 'wait=3'], 60), 3);
    assert.equal(requestedWait('wait=5', 0), 0);
    assert.equal(requestedWait(undefined, 60), 0);
    assert.equal(requestedWait('wait=-1', 60), 0);
    assert.equal(requestedWait('nowait=5', 60), 0);
    assert.equal(requestedWait('wait=99999999999', 60), 0);
  });

  it('a grant allows its kind only; encryption is the policy alone; ask is opt-in', () => {
    const p = { allowed_kinds: [1], encrypt: false, decrypt: false };
    assert.equal(policyPermits(p, 'sign_event', 7), false);
    assert.equal(policyPermits(p, 'sign_event', 7, undefined, [7]), true);
    assert.equal(policyPermits(p, 'sign_event', 6, undefined, [7]), false);
    assert.equal(policyPermits(p, 'nip44_encrypt', undefined, undefined, [7]), false);
    assert.equal(policyAsks(p), false);
    assert.equal(policyAsks({ ...p, ask: true }), true);
  });

  it('the call hash matches the same call under the same authorization only, and is keyed', () => {
    const sealer = new PayloadSealer(randomBytes(32));
    const other = new PayloadSealer(randomBytes(32));
    const h = callHash(sealer, 'auth-1', sign(7));
    assert.deepEqual(callHash(sealer, 'auth-1', sign(7)), h);
    assert.notDeepEqual(callHash(sealer, 'auth-2', sign(7)), h);
    assert.notDeepEqual(callHash(sealer, 'auth-1', sign(7, 'other')), h);
    assert.notDeepEqual(callHash(other, 'auth-1', sign(7)), h);
  });

  it('ids are unguessable and match the page pattern; a summary opens only for its own approval', () => {
    const id = newApprovalId();
    assert.match(id, new RegExp(APPROVAL_ID_PATTERN));
    assert.notEqual(newApprovalId(), id);
    const sealer = new PayloadSealer(randomBytes(32));
    const sealed = sealSummary(sealer, id, summarize(sign(7, 'private words')));
    assert.ok(!sealed.includes('private words'));
    assert.deepEqual(openSummary(sealer, id, sealed), {
      method: 'sign_event',
      kind: 7,
      content: 'private words',
      tags: 0,
    });
    assert.throws(() => openSummary(sealer, newApprovalId(), sealed));
    assert.deepEqual(summarize({ method: 'nip44_decrypt', peer: 'ab', ciphertext: 'secret' }), {
      method: 'nip44_decrypt',
      peer: 'ab',
    });
  });
});
