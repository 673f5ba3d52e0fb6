// Closed-loop NIP-46 load: each client keeps one sign_event request in flight for the run's length.
// Latency is taken from building the request event to reading the decrypted answer.
import type { NostrEvent } from '../../shared/nostr/types.js';
import { percentile, round } from '../stats.js';
import type { BunkerLoadClient } from './bunker-client.js';

export interface Nip46LoadResult {
  durationS: number;
  roundTrips: number;
  rtPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** Requests answered with an error, and requests with no answer in time (or a closed socket). */
  errors: { replied: number; failed: number; samples: string[] };
  /** A few signed events of the run, to verify afterwards. */
  signed: NostrEvent[];
}

const KEEP_SIGNED = 20;

export async function runNip46Load(clients: readonly BunkerLoadClient[], durationS: number): Promise<Nip46LoadResult> {
  const latencies: number[] = [];
  const errors = { replied: 0, failed: 0, samples: [] as string[] };
  const signed: NostrEvent[] = [];
  const note = (what: string) => {
    if (errors.samples.length < 5) errors.samples.push(what);
  };
  const start = performance.now();
  const end = start + durationS * 1000;
  let seq = 0;

  const lane = async (client: BunkerLoadClient) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const unsigned = {
        kind: 1,
        content: `nip46 bench ${seq++}`,
        tags: [],
        created_at: Math.floor(Date.now() / 1000),
      };
      try {
        const reply = await client.request('sign_event', [JSON.stringify(unsigned)]);
        const t1 = performance.now();
        if (reply.error !== undefined || reply.result === undefined) {
          errors.replied++;
          note(reply.error ?? 'no result');
          continue;
        }
        if (t1 <= end) latencies.push(t1 - t0);
        if (signed.length < KEEP_SIGNED && seq % 7 === 0) signed.push(JSON.parse(reply.result) as NostrEvent);
      } catch (err) {
        errors.failed++;
        note((err as Error).message);
      }
    }
  };
  await Promise.all(clients.map(lane));
  const elapsedS = (performance.now() - start) / 1000;
  return {
    durationS: round(elapsedS, 2),
    roundTrips: latencies.length,
    rtPerSec: round(latencies.length / durationS),
    latencyMs: {
      p50: round(percentile(latencies, 50), 2),
      p95: round(percentile(latencies, 95), 2),
      p99: round(percentile(latencies, 99), 2),
      max: round(Math.max(...latencies), 2),
    },
    errors,
    signed,
  };
}
