// Acts on key prefetch hints (shared/key-prefetch.ts): loads the named key into this process's cache when
// it owns the hint's shard, so the session's first request finds it there. Bounded: at most `maxInFlight`
// prefetch loads at once, the rest are dropped (the request loads its key itself, as without a hint); a
// cached key, a shard owned elsewhere or a malformed message costs nothing but the parse.
import { KeyNotFoundError } from '../shared/custody/key-store.js';
import { parseKeyPrefetchHint } from '../shared/key-prefetch.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import type { KeyCache } from './key-cache.js';
import type { KeyLoader } from './key-loader.js';

export type PrefetchOutcome = 'invalid' | 'not_owned' | 'cached' | 'busy' | 'loaded' | 'not_found' | 'failed';

export interface KeyPrefetcherOptions {
  cache: KeyCache;
  keyLoader: KeyLoader;
  shardCount: number;
  /** Whether this process owns the shard now (it runs the shard's jobs). */
  owns: (shard: number) => boolean;
  /** Prefetch loads at once; 0 ignores every hint. */
  maxInFlight: number;
  logger: Logger;
}

export class KeyPrefetcher {
  private inFlight = 0;

  constructor(private readonly opts: KeyPrefetcherOptions) {}

  /** Prefetch loads running now. */
  get running(): number {
    return this.inFlight;
  }

  /** Acts on one message of the hint channel; never throws. Resolves when a load it started has ended. */
  hint(message: string): Promise<PrefetchOutcome> {
    const { cache, keyLoader, logger } = this.opts;
    const hint = parseKeyPrefetchHint(message, this.opts.shardCount);
    if (!hint) return this.done('invalid');
    if (!this.opts.owns(hint.shard)) return this.done('not_owned');
    if (cache.peekKey(hint.keyId)) return this.done('cached');
    if (this.inFlight >= this.opts.maxInFlight) return this.done('busy');
    this.inFlight++;
    return cache
      .prefetchKey(hint.keyId, (id) => keyLoader.load(id))
      .then(
        (outcome): PrefetchOutcome => (outcome === 'loaded' ? 'loaded' : 'cached'),
        (err: unknown): PrefetchOutcome => {
          if (err instanceof KeyNotFoundError) return 'not_found';
          logger.debug({ keyId: hint.keyId, err: (err as Error).message }, 'key prefetch failed');
          return 'failed';
        },
      )
      .then((outcome) => {
        this.inFlight--;
        return this.done(outcome);
      });
  }

  private done(outcome: PrefetchOutcome): Promise<PrefetchOutcome> {
    metrics.keyPrefetch.inc({ outcome });
    return Promise.resolve(outcome);
  }
}
