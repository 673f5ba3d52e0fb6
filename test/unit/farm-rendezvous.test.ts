import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rendezvousOwner } from '../../workers/shard-leases.js';

const SHARDS = 1024;
const assign = (members: string[]) => Array.from({ length: SHARDS }, (_, s) => rendezvousOwner(members, s)!);
const countBy = (owners: string[]) => owners.reduce((m, o) => m.set(o, (m.get(o) ?? 0) + 1), new Map<string, number>());

test('rendezvous assignment is deterministic and order independent', () => {
  const a = assign(['w-a', 'w-b', 'w-c']);
  assert.deepEqual(assign(['w-c', 'w-a', 'w-b']), a);
  assert.equal(rendezvousOwner([], 3), undefined);
  assert.deepEqual(new Set(assign(['solo'])), new Set(['solo']));
});

test('rendezvous assignment is balanced', () => {
  const members = ['host-1:101:aa', 'host-1:102:bb', 'host-2:201:cc'];
  const counts = countBy(assign(members));
  for (const m of members) {
    const c = counts.get(m) ?? 0;
    assert.ok(Math.abs(c - SHARDS / 3) < (SHARDS / 3) * 0.15, `${m} owns ${c}`);
  }
  // With the deployment default of 16 shards, no member of three goes without work or takes most of it.
  const small = countBy(Array.from({ length: 16 }, (_, s) => rendezvousOwner(members, s)!));
  for (const m of members)
    assert.ok((small.get(m) ?? 0) >= 2 && (small.get(m) ?? 0) <= 10, `${m} owns ${small.get(m)} of 16`);
});

test('a member joining takes only its share, and only from others to itself', () => {
  const before = assign(['a', 'b', 'c']);
  const after = assign(['a', 'b', 'c', 'd']);
  let moved = 0;
  before.forEach((owner, s) => {
    if (after[s] !== owner) {
      moved++;
      assert.equal(after[s], 'd', `shard ${s} moved to ${after[s]}, not to the new member`);
    }
  });
  assert.ok(Math.abs(moved - SHARDS / 4) < (SHARDS / 4) * 0.2, `moved ${moved}`);
});

test('a member leaving gives away only its own shards', () => {
  const before = assign(['a', 'b', 'c', 'd']);
  const after = assign(['a', 'b', 'd']);
  before.forEach((owner, s) => {
    if (owner !== 'c') assert.equal(after[s], owner, `shard ${s} moved though its owner stayed`);
    else assert.notEqual(after[s], 'c');
  });
});
