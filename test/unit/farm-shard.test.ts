import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { ShardNames, shardOf } from '../../shared/shard.js';

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
  for (const key of [names.items(5), names.lease(5), `${names.queuePrefix(5)}:${names.queue(5)}:wait`]) {
    assert.match(key, /\{shard-5\}/);
  }
});
