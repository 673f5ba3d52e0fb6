// NIP-46 clients for tests against a farm's relay-ingest: the fast reconnect settings the tests give it,
// a wait until it listens for a bunker on one relay in particular, and nostr-tools BunkerSigners with
// recorded client keys.
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey } from 'nostr-tools';
import { BunkerSigner, type BunkerPointer } from 'nostr-tools/nip46';
import { SimplePool } from 'nostr-tools/pool';
import type { RelayIngestTuning } from '../../relay-ingest/index.js';
import { startTestFarm, type TestFarm } from './farm.js';
import { recordSecret } from './logs.js';
import { startTestRelay, type TestRelay } from './relay.js';
import { waitFor, within } from './wait.js';

/** relay-ingest's relay settings in tests: quick reconnects and publish timeouts. */
export const FAST_RELAY = { minBackoffMs: 100, maxBackoffMs: 800, pingIntervalMs: 1000, publishTimeoutMs: 2000 };

/**
 * A test relay, and a farm (api, workers, relay-ingest with FAST_RELAY) whose bunkers are on it, with `env`
 * added to its settings and `tuning` to relay-ingest's. The caller stops both.
 */
export async function startFarmOnTestRelay(
  name: string,
  env: Record<string, string> = {},
  tuning: Partial<RelayIngestTuning> = {},
): Promise<{ relay: TestRelay; farm: TestFarm }> {
  const relay = await startTestRelay();
  try {
    const farm = await startTestFarm(
      name,
      { BUNKER_RELAYS: relay.url, ...env },
      { api: true, workers: true, relayIngest: { relay: FAST_RELAY, publishRetryDelayMs: 100, ...tuning } },
    );
    return { relay, farm };
  } catch (err) {
    await relay.stop();
    throw err;
  }
}

/**
 * Waits until `relay` holds an active subscription naming `pubkey` in `#p` (after its EOSE, not merely a
 * REQ received: a request published between the two would not reach relay-ingest). A new bunker's URL is
 * handed out once relay-ingest listens on some relay; a test that publishes on one relay of several, or
 * after relay-ingest resubscribed, waits for that relay here.
 */
export function waitForBunkerListener(
  relay: TestRelay,
  pubkey: string,
  ms = 5000,
  what = 'subscription to the new bunker',
): Promise<void> {
  return waitFor(() => relay.stats.subscribed.some(([, fs]) => fs.some((f) => f['#p']?.includes(pubkey))), ms, what);
}

export interface SignerOptions {
  /** The client's secret key; a new one (recorded) by default. */
  sk?: Uint8Array;
  /** Called with the approval URL of an auth_url answer. */
  onauth?: (url: string) => void;
}

/** The BunkerSigners a test made, each on a pool of its own, all closed by close(). */
export class BunkerClients {
  private readonly pools: SimplePool[] = [];
  private readonly signers: BunkerSigner[] = [];

  /** A BunkerSigner for `bp`, not connected. */
  signer(bp: BunkerPointer, opts: SignerOptions = {}): BunkerSigner {
    let sk = opts.sk;
    if (!sk) {
      sk = generateSecretKey();
      recordSecret(bytesToHex(sk));
    }
    const pool = new SimplePool();
    this.pools.push(pool);
    const signer = BunkerSigner.fromBunker(
      sk,
      { ...bp, relays: [...bp.relays] },
      opts.onauth ? { pool, onauth: opts.onauth } : { pool },
    );
    this.signers.push(signer);
    return signer;
  }

  /** A BunkerSigner for `bp` that has sent its connect (with the bunker's secret) and had the answer. */
  async connected(bp: BunkerPointer, opts: SignerOptions = {}): Promise<BunkerSigner> {
    const signer = this.signer(bp, opts);
    await within(5000, signer.connect(), 'connect');
    return signer;
  }

  async close(): Promise<void> {
    for (const s of this.signers) await s.close().catch(() => undefined);
    for (const p of this.pools) p.destroy();
  }
}
