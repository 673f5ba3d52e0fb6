import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { ShardNames, clusterSlot, shardOf } from '../../shared/shard.js';

// Fixed vectors: a change here moves every user to another shard (and another worker's cache).
const VECTORS: [pubkey: string, of16: number, of1024: number][] = [
  ['0000000000000000000000000000000000000000000000000000000000000001', 8, 232],
  ['79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798', 3, 323],
  ['3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d', 11, 395],
  ['82341f882b6eabcd2ba7f1ef90aad961cf074af15b9ef44a09f9d2a8fbfbe6a2', 10, 922],
];

test('shardOf matches fixed vectors and an independent sha256', () => {
  for (const [pubkey, of16, of1024] of VECTORS) {
    assert.equal(shardOf(pubkey, 16), of16, pubkey);
    assert.equal(shardOf(pubkey, 1024), of1024, pubkey);
    assert.equal(shardOf(pubkey.toUpperCase(), 16), of16, 'case does not matter');
    const d = sha256(utf8ToBytes(pubkey));
    const first = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
    assert.equal(first % 16, of16);
  }
});

test('shardOf spreads pubkeys evenly', () => {
  const shards = 16;
  const n = 32_000;
  const counts = new Array<number>(shards).fill(0);
  // A fixed set of random-looking pubkeys, so the check cannot fail by chance (it once did at 4.6 sigma).
  const pubkey = (i: number) => createHash('sha256').update(`pubkey ${i}`).digest('hex');
  for (let i = 0; i < n; i++) counts[shardOf(pubkey(i), shards)]!++;
  const expected = n / shards;
  for (const c of counts) assert.ok(Math.abs(c - expected) < expected * 0.1, `shard count ${c} vs ${expected}`);
});

test('every key of a shard shares its hash tag', () => {
  const names = new ShardNames('kf');
  for (const key of [names.jobs(5), names.meter(5), names.job(5, 'j.1'), names.dedupe(5, 'n46.x'), names.lease(5)]) {
    assert.match(key, /\{shard-5\}/);
  }
});

test("clusterSlot is Redis Cluster's CRC16 slot (vectors from the Redis Cluster spec and CLUSTER KEYSLOT)", () => {
  assert.equal(clusterSlot('123456789'), 0x31c3 % 16384);
  assert.equal(clusterSlot('shard-0'), 4971);
  assert.equal(clusterSlot('shard-3'), 8968);
});

test('on a cluster, shard tags spread evenly over the slots: each shard in its own equal run of slots', () => {
  for (const count of [1, 3, 6, 16, 48]) {
    const names = new ShardNames('kf', { spreadOverSlots: count });
    for (let shard = 0; shard < count; shard++) {
      const tag = /\{([^}]+)\}/.exec(names.jobs(shard))![1]!;
      assert.equal(Math.floor((clusterSlot(tag) * count) / 16384), shard, `${count} shards: shard ${shard} tag ${tag}`);
      assert.equal(names.lease(shard).includes(`{${tag}}`), true, 'every key of the shard carries its tag');
    }
  }
  // Three masters over 3 shards: one shard each (plain shard-N tags put two on one master and none on another).
  const master = (slot: number) => (slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2);
  const spread = new ShardNames('kf', { spreadOverSlots: 3 });
  const tagOf = (n: ShardNames, s: number) => /\{([^}]+)\}/.exec(n.jobs(s))![1]!;
  assert.deepEqual(
    [0, 1, 2].map((s) => master(clusterSlot(tagOf(spread, s)))),
    [0, 1, 2],
  );
  assert.deepEqual(
    [0, 1, 2].map((s) => master(clusterSlot(tagOf(new ShardNames('kf'), s)))),
    [0, 0, 2],
  );
  assert.equal(new ShardNames('kf').queuePrefix(5), 'kf:{shard-5}', 'a single Redis keeps its key names');
});
