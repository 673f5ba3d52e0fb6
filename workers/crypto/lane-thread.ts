// A crypto lane thread: answers each batch of curve records (lane-records.ts) in place and hands the
// buffer back, transferred. It runs the process's backend; one that cannot be loaded stops the thread,
// and the lane fails the batches sent to it.
import { parentPort, workerData } from 'node:worker_threads';
import { useCryptoBackend, type CryptoBackendName } from '../../shared/nostr/crypto-backend.js';
import { runLaneRecords } from './lane-records.js';

export interface LaneWorkerData {
  backend: CryptoBackendName;
}

useCryptoBackend((workerData as LaneWorkerData).backend);

const port = parentPort!;
port.on('message', (buffer: ArrayBuffer) => {
  runLaneRecords(new Uint8Array(buffer));
  port.postMessage(buffer, [buffer]);
});
