import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../shared/custody/crc32c.js';

test('crc32c matches the published Castagnoli check values', () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  // RFC 3720 (iSCSI) appendix B.4 vectors.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
});
