// A crypto lane thread with faults a test can trigger by the message it signs, to hold the lane's client
// to what it must do when its thread misbehaves:
// - a message starting 0xfa is signed with one bit of the signature flipped (a faulty signer);
// - a message or public key of 32 bytes 0xee stops the thread mid-batch (a crash);
// - a batch whose bytes beyond its records are not all zero (a reused buffer that was not wiped) gets every
//   record failed.
// Otherwise it is lane-thread.ts on the native backend.
import { parentPort } from 'node:worker_threads';
import { nativeBackend, useCryptoBackend, type CryptoBackend } from '../../shared/nostr/crypto-backend.js';
import {
  batchBytes,
  HEADER_BYTES,
  LaneStatus,
  OFF_MSG,
  OFF_PUB,
  OFF_STATUS,
  RECORD_BYTES,
  recordCount,
  runLaneRecords,
} from '../../workers/crypto/lane-records.js';

const native = nativeBackend()!;
const faulty: CryptoBackend = {
  ...native,
  signWithKey(msg32, key, pubX, aux32) {
    const sig = native.signWithKey(msg32, key, pubX, aux32);
    if (msg32[0] === 0xfa) sig[0]! ^= 1;
    return sig;
  },
};
useCryptoBackend('native', () => ({ backend: faulty }));

const port = parentPort!;
port.on('message', (buffer: ArrayBuffer) => {
  const bytes = new Uint8Array(buffer);
  const count = recordCount(bytes);
  for (let i = 0; i < count; i++) {
    for (const field of [OFF_MSG, OFF_PUB]) {
      const at = HEADER_BYTES + i * RECORD_BYTES + field;
      if (bytes.subarray(at, at + 32).every((b) => b === 0xee)) process.exit(3);
    }
  }
  if (bytes.subarray(batchBytes(count)).some((b) => b !== 0)) {
    for (let i = 0; i < count; i++) bytes[HEADER_BYTES + i * RECORD_BYTES + OFF_STATUS] = LaneStatus.Failed;
  } else {
    runLaneRecords(bytes);
  }
  port.postMessage(buffer, [buffer]);
});
