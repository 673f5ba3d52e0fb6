// Which processes hand their curve work to a crypto lane thread by default: those whose event loop also
// serves HTTP or relays. A workers-only process keeps it on its event loop unless told otherwise.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cryptoLaneThreads } from '../../bin/roles.js';
import { parseConfig } from '../../shared/config.js';

describe('crypto lane threads', () => {
  it('default to one where the process serves HTTP or relays, none in a workers-only process', () => {
    assert.equal(cryptoLaneThreads(undefined, { api: true, workers: true, relayIngest: true }), 1);
    assert.equal(cryptoLaneThreads(undefined, { relayIngest: true }), 1);
    assert.equal(cryptoLaneThreads(undefined, { api: true, workers: true }), 1);
    assert.equal(cryptoLaneThreads(undefined, { workers: true }), 0);
  });

  it('are what CRYPTO_LANE_THREADS says when it is set, 0 included', () => {
    assert.equal(cryptoLaneThreads(0, { api: true, workers: true, relayIngest: true }), 0);
    assert.equal(cryptoLaneThreads(3, { workers: true }), 3);
  });

  it('CRYPTO_LANE_THREADS: unset or empty means the default; 0-16 taken, anything else refused', () => {
    assert.equal(parseConfig({}).CRYPTO_LANE_THREADS, undefined);
    assert.equal(parseConfig({ CRYPTO_LANE_THREADS: '' }).CRYPTO_LANE_THREADS, undefined);
    assert.equal(parseConfig({ CRYPTO_LANE_THREADS: '0' }).CRYPTO_LANE_THREADS, 0);
    assert.equal(parseConfig({ CRYPTO_LANE_THREADS: '16' }).CRYPTO_LANE_THREADS, 16);
    for (const bad of ['17', '-1', '1.5', '1e1', 'two'])
      assert.throws(() => parseConfig({ CRYPTO_LANE_THREADS: bad }), /CRYPTO_LANE_THREADS/);
  });
});
