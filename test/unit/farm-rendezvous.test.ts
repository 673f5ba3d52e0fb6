import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rendezvousOwner, shardOwners } from '../../workers/shard-leases.js';

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

const countOf = (owners: (string | undefined)[]) => countBy(owners.map((o) => o!));

test('shardOwners divides the shards evenly: two workers and 8 shards get 4 each, whatever their ids', () => {
  for (let run = 0; run < 200; run++) {
    const members = [`host-${run}:${1000 + run}:${run * 7919}`, `host-${run + 1}:${2000 + run}:${run * 104729}`];
    const owners = shardOwners(members, 8);
    assert.deepEqual([...countOf(owners).values()], [4, 4], `${members}: ${owners}`);
  }
  // And any number of members: each gets floor or ceil of its share, every shard exactly one owner.
  for (const [m, s] of [
    [3, 8],
    [3, 16],
    [4, 10],
    [5, 64],
    [7, 1024],
    [9, 4],
  ] as const) {
    const members = Array.from({ length: m }, (_, i) => `w-${m}-${s}-${i}`);
    const owners = shardOwners(members, s);
    assert.equal(owners.filter((o) => o === undefined).length, 0);
    for (const member of members) {
      const c = owners.filter((o) => o === member).length;
      assert.ok(c === Math.floor(s / m) || c === Math.ceil(s / m), `${member}: ${c} of ${s} shards over ${m}`);
    }
  }
  assert.deepEqual(shardOwners([], 3), [undefined, undefined, undefined]);
  assert.deepEqual(shardOwners(['solo', 'solo'], 3), ['solo', 'solo', 'solo']);
});

test('shardOwners is the same in every member and moves little on a join or a leave', () => {
  const members = ['a', 'b', 'c'];
  assert.deepEqual(shardOwners(['c', 'a', 'b'], 64), shardOwners(members, 64));
  const before = shardOwners(members, 64);
  const joined = shardOwners([...members, 'd'], 64);
  const moved = before.filter((o, s) => joined[s] !== o).length;
  assert.equal(joined.filter((o) => o === 'd').length, 16);
  // At least the joiner's 16; bounded loads may shift a few more between the others, never most of them.
  assert.ok(moved >= 16 && moved <= 24, `a join moved ${moved} of 64 shards`);
  const left = shardOwners(['a', 'b'], 64);
  const movedOnLeave = before.filter((o, s) => o !== 'c' && left[s] !== o).length;
  assert.ok(movedOnLeave <= 8, `a leave moved ${movedOnLeave} shards of the members that stayed`);
});
