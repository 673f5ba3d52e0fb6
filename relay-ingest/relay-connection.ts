// One relay, kept connected: reconnects with exponential backoff and jitter, finds half-open sockets with
// WebSocket pings, (re)sends its subscriptions with a `since` window on every (re)connect so requests sent
// while it was away are still delivered (by relays that keep them), and publishes events awaiting OK.
// It knows which pubkeys each subscription listens for once the relay's EOSE confirms it: a request
// published before then (ephemeral, never stored) would not reach it.
//
// Written on `ws` directly rather than nostr-tools' Relay: that one reconnects on a fixed 10 s+ schedule
// without jitter, resubscribes from the last event seen (+1 s, no window for clock skew or requests that
// arrive out of order), and has no hook for dropping oversized messages before they are parsed.
import type { LookupFunction } from 'node:net';
import WebSocket from 'ws';
import type { Logger } from '../shared/logger.js';
import { relayForLog } from '../shared/nostr/relay-url.js';
import type { NostrEvent } from '../shared/nostr/types.js';

export interface RelayFilter {
  kinds: number[];
  '#p': string[];
  since?: number;
}

export interface RelayTuning {
  /** First reconnect delay; doubles per failed attempt up to maxBackoffMs, with jitter. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** A ping every interval; no pong by the next ping means a dead socket. */
  pingIntervalMs: number;
  /** Opening handshake limit. */
  connectTimeoutMs: number;
  /** How far back every (re)subscribe reaches. */
  sinceWindowSeconds: number;
  /** After a long outage, no further back than this. */
  maxLookbackSeconds: number;
  publishTimeoutMs: number;
  /** Messages longer than this (characters) are dropped unread. */
  maxMessageChars: number;
  /** A subscription the relay CLOSED is sent again after this long. */
  resubscribeAfterClosedMs: number;
}

export const DEFAULT_RELAY_TUNING: RelayTuning = {
  minBackoffMs: 250,
  maxBackoffMs: 30_000,
  pingIntervalMs: 15_000,
  connectTimeoutMs: 10_000,
  sinceWindowSeconds: 120,
  maxLookbackSeconds: 900,
  publishTimeoutMs: 5_000,
  maxMessageChars: 1024 * 1024,
  resubscribeAfterClosedMs: 5_000,
};

export interface RelayConnectionHandlers {
  /** An EVENT for one of our subscriptions, unparsed beyond the message frame. */
  onEvent(relay: string, event: unknown): void;
  /** A message over maxMessageChars, dropped. */
  onOversized(relay: string, chars: number): void;
  onConnectedChange?(relay: string, connected: boolean): void;
  /** The relay sent EOSE for a subscription: it now delivers requests to these pubkeys. */
  onListening?(relay: string, pubkeys: readonly string[]): void;
}

/** What stands between a user relay's URL and a socket (shared/user-relay-policy.ts); none for service relays. */
export interface ConnectGuard {
  /** Null when the URL may be connected to, else why not (checked before every attempt). */
  check(url: string): string | null;
  /** Resolves host names for the socket, refusing non-public addresses. */
  lookup?: LookupFunction;
}

export interface PublishOutcome {
  ok: boolean;
  message: string;
}

/**
 * REQs of one subscription awaiting their EOSE at most; past it (a relay that never sends EOSE) the
 * subscription is not trusted to listen until the next connection.
 */
const MAX_AWAITING_EOSE = 64;

/** Holding a connection open longer than this resets the backoff. */
const STABLE_AFTER_MS = 10_000;

export class RelayConnection {
  private ws: WebSocket | undefined;
  private readonly subs = new Map<string, Omit<RelayFilter, 'since'>>();
  /** Per subscription, the `#p` lists of REQs sent and not yet answered with EOSE or CLOSED, oldest first. */
  private readonly awaitingEose = new Map<string, string[][]>();
  /** Per subscription, the pubkeys of its latest REQ the relay confirmed with EOSE: requests to them arrive. */
  private readonly live = new Map<string, Set<string>>();
  /** Subscriptions whose EOSEs can no longer be matched to their REQs on this connection. */
  private readonly unmatched = new Set<string>();
  private readonly pending = new Map<
    string,
    { promise: Promise<PublishOutcome>; resolve: (o: PublishOutcome) => void; timer: NodeJS.Timeout }
  >();
  private readonly waiters = new Set<() => void>();
  private attempts = 0;
  private openedAt = 0;
  private downSince: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private closed = false;
  private _connected = false;

  constructor(
    readonly url: string,
    private readonly handlers: RelayConnectionHandlers,
    private readonly logger: Logger,
    private readonly tuning: RelayTuning = DEFAULT_RELAY_TUNING,
    private readonly guard?: ConnectGuard,
  ) {}

  get connected(): boolean {
    return this._connected;
  }

  start(): void {
    this.closed = false;
    this.open();
  }

  /** Sets (or with undefined, closes) one subscription; sent at once when connected, and on every reconnect. */
  setSubscription(id: string, filter: Omit<RelayFilter, 'since'> | undefined): void {
    if (filter) {
      this.subs.set(id, filter);
      if (this._connected) this.sendReq(id, filter, this.since());
    } else if (this.subs.delete(id)) {
      this.live.delete(id);
      if (this._connected) this.send(['CLOSE', id]);
    }
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** Whether a subscription naming `pubkey` is active on the relay (its REQ answered with EOSE). */
  listeningFor(pubkey: string): boolean {
    for (const pubkeys of this.live.values()) if (pubkeys.has(pubkey)) return true;
    return false;
  }

  /** Sends an event and waits for the relay's OK (a duplicate counts as accepted). */
  publish(event: NostrEvent): Promise<PublishOutcome> {
    if (!this._connected) return Promise.resolve({ ok: false, message: 'not connected' });
    const existing = this.pending.get(event.id);
    if (existing) return existing.promise;
    let resolve!: (o: PublishOutcome) => void;
    const promise = new Promise<PublishOutcome>((r) => (resolve = r));
    const timer = setTimeout(
      () => this.settle(event.id, { ok: false, message: 'no OK in time' }),
      this.tuning.publishTimeoutMs,
    );
    this.pending.set(event.id, { promise, resolve, timer });
    if (!this.send(['EVENT', event])) this.settle(event.id, { ok: false, message: 'send failed' });
    return promise;
  }

  /** Resolves true once connected, false after timeoutMs. */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this._connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(onConnect);
        resolve(ok);
      };
      const onConnect = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(onConnect);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.stopPing();
    for (const id of [...this.pending.keys()]) this.settle(id, { ok: false, message: 'closing' });
    const ws = this.ws;
    this.ws = undefined;
    this.setConnected(false);
    if (!ws) return;
    await new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      ws.close();
    });
  }

  private open(): void {
    if (this.closed) return;
    const refused = this.guard?.check(this.url);
    if (refused) {
      // No retry: the URL itself is refused, and will be until the plan drops it.
      this.logger.warn({ relay: relayForLog(this.url), reason: refused }, 'user relay refused: not connecting');
      return;
    }
    let ws: WebSocket;
    try {
      // maxPayload well above maxMessageChars: an oversized event is dropped and counted, not a reason
      // for ws to kill the connection (which a hostile sender could then do at will).
      const options: WebSocket.ClientOptions & { lookup?: LookupFunction } = {
        handshakeTimeout: this.tuning.connectTimeoutMs,
        maxPayload: 16 * 1024 * 1024,
      };
      if (this.guard?.lookup) options.lookup = this.guard.lookup;
      ws = new WebSocket(this.url, options);
    } catch (err) {
      this.logger.warn({ relay: relayForLog(this.url), err: (err as Error).message }, 'relay url refused');
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.on('open', () => this.onOpen(ws));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.onMessage(data.toString());
    });
    ws.on('pong', () => (this.awaitingPong = false));
    ws.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ERELAYREFUSED')
        this.logger.warn({ relay: this.url, err: err.message }, 'user relay refused: not connecting');
      else this.logger.debug({ relay: this.url, err: err.message }, 'relay socket error');
    });
    ws.on('close', () => this.onClose(ws));
  }

  private onOpen(ws: WebSocket): void {
    if (ws !== this.ws) return;
    this.openedAt = Date.now();
    const since = this.since();
    this.downSince = undefined;
    this.setConnected(true);
    this.logger.info({ relay: this.url, subscriptions: this.subs.size }, 'relay connected');
    for (const [id, filter] of this.subs) this.sendReq(id, filter, since);
    this.awaitingPong = false;
    this.stopPing();
    this.pingTimer = setInterval(() => this.ping(), this.tuning.pingIntervalMs);
    this.pingTimer.unref();
    for (const w of [...this.waiters]) w();
  }

  private onClose(ws: WebSocket): void {
    if (ws !== this.ws) return;
    this.ws = undefined;
    this.stopPing();
    const wasConnected = this._connected;
    this.setConnected(false);
    this.downSince ??= Date.now();
    for (const id of [...this.pending.keys()]) this.settle(id, { ok: false, message: 'connection closed' });
    if (wasConnected) this.logger.warn({ relay: this.url }, 'relay connection lost');
    if (wasConnected && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.attempts = 0;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const base = Math.min(this.tuning.maxBackoffMs, this.tuning.minBackoffMs * 2 ** Math.min(this.attempts, 20));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempts++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
    this.reconnectTimer.unref();
  }

  private ping(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.awaitingPong) {
      this.logger.warn({ relay: this.url }, 'relay did not answer a ping: dropping the half-open socket');
      ws.terminate();
      return;
    }
    this.awaitingPong = true;
    ws.ping();
  }

  private stopPing(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  /** The `since` of a (re)subscribe: the window, reaching back to before an outage, bounded. */
  private since(): number {
    const now = Math.floor(Date.now() / 1000);
    let since = now - this.tuning.sinceWindowSeconds;
    if (this.downSince !== undefined)
      since = Math.min(since, Math.floor(this.downSince / 1000) - this.tuning.sinceWindowSeconds);
    return Math.max(since, now - this.tuning.maxLookbackSeconds);
  }

  private sendReq(id: string, filter: Omit<RelayFilter, 'since'>, since: number): void {
    if (!this.send(['REQ', id, { ...filter, since }]) || this.unmatched.has(id)) return;
    const queue = this.awaitingEose.get(id) ?? [];
    this.awaitingEose.set(id, queue);
    queue.push(filter['#p']);
    if (queue.length > MAX_AWAITING_EOSE) {
      this.unmatched.add(id);
      this.awaitingEose.delete(id);
      this.live.delete(id);
    }
  }

  /** A relay answers a subscription's REQs in order: EOSE (active) or CLOSED (refused) each takes the oldest. */
  private answered(id: string): string[] | undefined {
    const queue = this.awaitingEose.get(id);
    const pubkeys = queue?.shift();
    if (queue?.length === 0) this.awaitingEose.delete(id);
    return pubkeys;
  }

  private onEose(id: string): void {
    const pubkeys = this.answered(id);
    if (!pubkeys || !this.subs.has(id)) return;
    this.live.set(id, new Set(pubkeys));
    this.handlers.onListening?.(this.url, pubkeys);
  }

  private send(message: unknown[]): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  private onMessage(text: string): void {
    if (text.length > this.tuning.maxMessageChars) {
      this.handlers.onOversized(this.url, text.length);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(msg)) return;
    switch (msg[0]) {
      case 'EVENT':
        if (typeof msg[1] === 'string' && this.subs.has(msg[1])) this.handlers.onEvent(this.url, msg[2]);
        return;
      case 'OK':
        if (typeof msg[1] === 'string') {
          const accepted = msg[2] === true;
          const message = typeof msg[3] === 'string' ? msg[3] : '';
          this.settle(msg[1], { ok: accepted || message.startsWith('duplicate:'), message });
        }
        return;
      case 'EOSE':
        if (typeof msg[1] === 'string') this.onEose(msg[1]);
        return;
      case 'CLOSED':
        if (typeof msg[1] === 'string') this.onSubscriptionClosed(msg[1], typeof msg[2] === 'string' ? msg[2] : '');
        return;
      case 'NOTICE':
        this.logger.debug({ relay: this.url, notice: String(msg[1]).slice(0, 200) }, 'relay notice');
        return;
      default:
        return;
    }
  }

  private onSubscriptionClosed(id: string, reason: string): void {
    this.answered(id);
    this.live.delete(id);
    if (!this.subs.has(id)) return;
    this.logger.warn(
      { relay: this.url, subscription: id, reason: reason.slice(0, 200) },
      'relay closed a subscription; will send it again',
    );
    const t = setTimeout(() => {
      const filter = this.subs.get(id);
      if (filter && this._connected) this.sendReq(id, filter, this.since());
    }, this.tuning.resubscribeAfterClosedMs);
    t.unref();
  }

  private settle(eventId: string, outcome: PublishOutcome): void {
    const p = this.pending.get(eventId);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(eventId);
    p.resolve(outcome);
  }

  private setConnected(connected: boolean): void {
    if (this._connected === connected) return;
    this._connected = connected;
    // A new socket starts with no subscription: each is listening again only after its own EOSE.
    this.awaitingEose.clear();
    this.live.clear();
    this.unmatched.clear();
    this.handlers.onConnectedChange?.(this.url, connected);
  }
}
