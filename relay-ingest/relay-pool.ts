// The relays relay-ingest stays connected to, and what it subscribes to on each: the service relays
// (BUNKER_RELAYS) always, carrying every bunker; an authorization's own relays (a nostrconnect client's)
// carrying that authorization's bunker. Responses are published with retries and counted.
import type { Logger } from '../shared/logger.js';
import { NIP46_KIND } from '../shared/nip46/protocol.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import { ingestMetrics } from './metrics.js';
import { DEFAULT_RELAY_TUNING, RelayConnection, type ConnectGuard, type RelayTuning } from './relay-connection.js';
import { SubscriptionPlan } from './subscription-plan.js';

export interface RelayPoolOptions {
  serviceRelays: string[];
  logger: Logger;
  onEvent(relay: string, event: unknown): void;
  onOversized(relay: string, chars: number): void;
  /** A relay connected or disconnected. */
  onConnectedChange?(): void;
  tuning?: Partial<RelayTuning>;
  /** Relays besides the service relays this process will connect to (authorizations' own relays). */
  maxExtraRelays?: number;
  /** Checks every connect to a relay besides the service relays (users' relays); service relays are trusted. */
  userRelayGuard?: ConnectGuard;
  /** Bunker pubkeys per subscription. */
  chunkSize?: number;
  /** Tries per relay for one response. */
  publishAttempts?: number;
  publishRetryDelayMs?: number;
}

/** OK messages that no retry can change. */
const PERMANENT = /^(invalid|blocked|pow|restricted):/;

interface ListenWaiter {
  /** Relays that count; undefined: any. */
  urls: Set<string> | undefined;
  done(listening: boolean): void;
}

/** Waiters for a pubkey's subscription at most: past it, waitListening answers false at once. */
const MAX_LISTEN_WAITERS = 10_000;

interface Member {
  conn: RelayConnection;
  plan: SubscriptionPlan;
}

export class RelayPool {
  private readonly members = new Map<string, Member>();
  private readonly tuning: RelayTuning;
  private readonly service: Set<string>;
  private readonly listenWaiters = new Map<string, Set<ListenWaiter>>();
  private listenWaiterCount = 0;
  private closed = false;

  constructor(private readonly opts: RelayPoolOptions) {
    this.tuning = { ...DEFAULT_RELAY_TUNING, ...opts.tuning };
    this.service = new Set(opts.serviceRelays);
    for (const url of this.service) this.member(url);
    this.report();
  }

  /** Connects to relays newly wanted, subscribes and unsubscribes, drops extra relays no longer wanted. */
  sync(plan: Map<string, Set<string>>): void {
    if (this.closed) return;
    let extra = [...this.members.keys()].filter((u) => !this.service.has(u)).length;
    for (const [url, pubkeys] of plan) {
      if (!this.members.has(url)) {
        if (!this.service.has(url) && extra >= (this.opts.maxExtraRelays ?? 64)) {
          this.opts.logger.warn({ relay: url }, 'too many relays: not connecting to one more');
          continue;
        }
        if (!this.service.has(url)) extra++;
      }
      this.apply(this.member(url), pubkeys);
    }
    for (const [url, m] of this.members) {
      if (plan.has(url)) continue;
      if (this.service.has(url)) {
        this.apply(m, new Set());
      } else {
        this.members.delete(url);
        void m.conn.close();
      }
    }
    this.report();
  }

  has(url: string): boolean {
    return this.members.has(url);
  }

  connected(): string[] {
    return [...this.members.values()].filter((m) => m.conn.connected).map((m) => m.conn.url);
  }

  /** Service relays connected, of those configured: what readiness counts (a user's relay never does). */
  serviceStatus(): { connected: number; configured: number } {
    let connected = 0;
    for (const url of this.service) if (this.members.get(url)?.conn.connected) connected++;
    return { connected, configured: this.service.size };
  }

  known(): string[] {
    return [...this.members.keys()];
  }

  /** Waits (up to timeoutMs) for the given relays to be connected, so a publish right after has a chance. */
  async waitConnected(urls: string[], timeoutMs: number): Promise<void> {
    await Promise.all(urls.map((u) => this.members.get(u)?.conn.waitConnected(timeoutMs)));
  }

  /** Whether a relay (one of `urls`, or any) has an active subscription naming `pubkey`. */
  isListening(pubkey: string, urls?: Iterable<string>): boolean {
    const members = urls ? [...urls].map((u) => this.members.get(u)) : [...this.members.values()];
    return members.some((m) => m?.conn.listeningFor(pubkey) === true);
  }

  /**
   * Resolves true once a relay (one of `urls`, or any) has an active subscription naming `pubkey` (its
   * EOSE came), false after timeoutMs or at close.
   */
  waitListening(pubkey: string, timeoutMs: number, urls?: Iterable<string>): Promise<boolean> {
    if (this.isListening(pubkey, urls)) return Promise.resolve(true);
    if (this.closed || this.listenWaiterCount >= MAX_LISTEN_WAITERS) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiters = this.listenWaiters.get(pubkey) ?? new Set<ListenWaiter>();
      this.listenWaiters.set(pubkey, waiters);
      const waiter: ListenWaiter = {
        urls: urls ? new Set(urls) : undefined,
        done: (listening) => {
          clearTimeout(timer);
          if (!waiters.delete(waiter)) return;
          this.listenWaiterCount--;
          if (waiters.size === 0 && this.listenWaiters.get(pubkey) === waiters) this.listenWaiters.delete(pubkey);
          resolve(listening);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      timer.unref();
      waiters.add(waiter);
      this.listenWaiterCount++;
    });
  }

  /** Publishes to each relay we know of among `urls`, retrying; resolves with how many accepted it. */
  async publish(event: NostrEvent, urls: Iterable<string>, traceId?: string): Promise<number> {
    const targets = [...new Set(urls)].map((u) => this.members.get(u)).filter((m): m is Member => m !== undefined);
    const results = await Promise.all(targets.map((m) => this.publishOne(m.conn, event, traceId)));
    return results.filter(Boolean).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiters of [...this.listenWaiters.values()]) for (const w of [...waiters]) w.done(false);
    const all = [...this.members.values()];
    this.members.clear();
    await Promise.allSettled(all.map((m) => m.conn.close()));
    this.report();
  }

  private async publishOne(conn: RelayConnection, event: NostrEvent, traceId: string | undefined): Promise<boolean> {
    const attempts = this.opts.publishAttempts ?? 4;
    const baseDelay = this.opts.publishRetryDelayMs ?? 250;
    let last = '';
    for (let attempt = 0; attempt < attempts && !this.closed; attempt++) {
      if (attempt > 0) {
        ingestMetrics.publishRetries.inc();
        const delay = baseDelay * 2 ** (attempt - 1);
        // A relay that is reconnecting gets the whole delay to come back.
        if (!conn.connected) await conn.waitConnected(delay);
        else await new Promise((r) => setTimeout(r, delay));
      }
      const outcome = await conn.publish(event);
      if (outcome.ok) {
        ingestMetrics.publish.inc({ outcome: 'ok' });
        return true;
      }
      last = outcome.message;
      if (PERMANENT.test(outcome.message)) break;
    }
    ingestMetrics.publish.inc({ outcome: 'failed' });
    this.opts.logger.warn(
      { traceId, relay: conn.url, eventId: event.id, reason: last.slice(0, 200) },
      'publishing a nip46 response failed',
    );
    return false;
  }

  private member(url: string): Member {
    let m = this.members.get(url);
    if (!m) {
      const conn = new RelayConnection(
        url,
        {
          onEvent: (relay, event) => this.opts.onEvent(relay, event),
          onOversized: (relay, chars) => this.opts.onOversized(relay, chars),
          onConnectedChange: () => {
            this.report();
            this.opts.onConnectedChange?.();
          },
          onListening: (relay, pubkeys) => this.onListening(relay, pubkeys),
        },
        this.opts.logger,
        this.tuning,
        this.service.has(url) ? undefined : this.opts.userRelayGuard,
      );
      m = { conn, plan: new SubscriptionPlan(this.opts.chunkSize) };
      this.members.set(url, m);
      conn.start();
    }
    return m;
  }

  private apply(m: Member, pubkeys: Set<string>): void {
    for (const i of m.plan.assign(pubkeys)) {
      const chunk = m.plan.chunk(i);
      m.conn.setSubscription(`kf46-${i}`, chunk.length ? { kinds: [NIP46_KIND], '#p': chunk } : undefined);
    }
  }

  private onListening(relay: string, pubkeys: readonly string[]): void {
    if (this.listenWaiters.size === 0) return;
    for (const pk of pubkeys) {
      const waiters = this.listenWaiters.get(pk);
      if (!waiters) continue;
      for (const w of [...waiters]) if (!w.urls || w.urls.has(relay)) w.done(true);
    }
  }

  private report(): void {
    const { connected, configured } = this.serviceStatus();
    ingestMetrics.relaysKnown.set(this.closed ? 0 : configured);
    ingestMetrics.relaysConnected.set(connected);
    ingestMetrics.userRelays.set(
      this.members.size - [...this.members.keys()].filter((u) => this.service.has(u)).length,
    );
  }
}
