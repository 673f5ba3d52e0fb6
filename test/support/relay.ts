// A real Nostr relay for tests: @nostr-relay/core wired to a `ws` server, over an in-memory repository.
// Like relays that follow NIP-01, it does not store ephemeral events (kinds 20000-29999, NIP-46's 24133
// among them): it sends them to the subscribers connected at that moment, and a subscriber that comes back
// later, whatever its `since`, never sees them. `storeEphemeral` makes a relay that keeps them, for a test
// that says why it needs one. It can be stopped and started again on the same port, and it injects
// faults: refused publishes, events that skip validation (forged, oversized), slow subscriptions.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NostrRelay } from '@nostr-relay/core';
import { EventRepository, EventUtils, type Event, type Filter, type HandleMessagePlugin } from '@nostr-relay/common';
import { type WebSocket, WebSocketServer } from 'ws';

class MemoryEventRepository extends EventRepository {
  readonly events = new Map<string, Event>();

  isSearchSupported(): boolean {
    return false;
  }

  upsert(event: Event) {
    const isDuplicate = this.events.has(event.id);
    this.events.set(event.id, event);
    return { isDuplicate };
  }

  find(filter: Filter): Event[] {
    if (filter.limit === 0) return [];
    const found = [...this.events.values()].filter((e) => EventUtils.isMatchingFilter(e, filter));
    found.sort((a, b) => b.created_at - a.created_at);
    return filter.limit ? found.slice(0, filter.limit) : found;
  }

  async destroy(): Promise<void> {
    this.events.clear();
  }
}

export interface TestRelayStats {
  /** EVENT messages accepted, by author pubkey. */
  publishedBy: Map<string, Event[]>;
  /** REQ messages received: [subscription id, filters]. */
  reqs: [string, Filter[]][];
  /**
   * REQs whose subscription is active: the relay subscribes only after it has sent the stored events and
   * EOSE, so an event broadcast between a REQ's arrival and this point does not reach it.
   */
  subscribed: [string, Filter[]][];
}

export interface TestRelayOptions {
  /** Keep ephemeral events and serve them to later subscriptions, as no spec-following relay does. */
  storeEphemeral?: boolean;
}

const isEphemeral = (kind: number) => kind >= 20000 && kind < 30000;

export class TestRelay {
  readonly repo = new MemoryEventRepository();
  readonly stats: TestRelayStats = { publishedBy: new Map(), reqs: [], subscribed: [] };
  /** Refuse (OK false, "error: ...") the next n EVENT messages from this pubkey. */
  refuseNext = new Map<string, number>();
  /** While set, REQs naming these pubkeys in `#p` wait here: their subscriptions are not active yet. */
  private held: { pubkeys: Set<string>; release: Promise<void>; open(): void } | undefined;
  /** While set, matching REQs become active only this long after they arrive (a busy or distant relay). */
  private slowReqs: { ms: number; match: (subscriptionId: string, filters: Filter[]) => boolean } | undefined;
  private relay: NostrRelay | undefined;
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;
  private sockets = new Set<WebSocket>();
  private port = 0;

  constructor(private readonly options: TestRelayOptions = {}) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.http !== undefined;
  }

  async start(): Promise<this> {
    const relay = new NostrRelay(this.repo, { filterResultCacheTtl: 0, logger: silentLogger });
    relay.register(this.plugin());
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws, req) => {
      this.sockets.add(ws);
      relay.handleConnection(ws, req.socket.remoteAddress);
      ws.on('message', (data) => {
        let message: unknown;
        try {
          message = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (Array.isArray(message)) void relay.handleMessage(ws, message as never).catch(() => undefined);
      });
      ws.on('close', () => {
        this.sockets.delete(ws);
        relay.handleDisconnect(ws);
      });
      ws.on('error', () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (http.address() as AddressInfo).port;
    this.relay = relay;
    this.http = http;
    this.wss = wss;
    return this;
  }

  /** Drops every connection at once (like a crash) and stops listening; stored events survive. */
  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http = undefined;
    this.wss = undefined;
    this.relay = undefined;
  }

  /**
   * Holds every REQ whose `#p` names one of `pubkeys` until releaseReqs(): the subscriber is connected but
   * not yet subscribed, so events published meanwhile reach it only if the relay stores them.
   */
  holdReqs(pubkeys: string[]): void {
    let open!: () => void;
    const release = new Promise<void>((resolve) => (open = resolve));
    this.held = { pubkeys: new Set(pubkeys), release, open };
  }

  releaseReqs(): void {
    this.held?.open();
    this.held = undefined;
  }

  /** Makes every REQ that `match`es wait `ms` before it is served (and its subscription active); 0 stops it. */
  delayReqs(ms: number, match: (subscriptionId: string, filters: Filter[]) => boolean = () => true): void {
    this.slowReqs = ms > 0 ? { ms, match } : undefined;
  }

  /** Sends an event to matching subscribers without any validation (forged, malformed or huge events). */
  async inject(event: Event): Promise<void> {
    await this.relay?.broadcast(event);
  }

  /** Subscribers currently connected. */
  get clients(): number {
    return this.sockets.size;
  }

  /** Events of a kind published by a pubkey. */
  published(pubkey: string, kind = 24133): Event[] {
    return (this.stats.publishedBy.get(pubkey) ?? []).filter((e) => e.kind === kind);
  }

  private plugin(): HandleMessagePlugin {
    return {
      handleMessage: async (ctx, message, next) => {
        if (message[0] === 'REQ') {
          const filters = message.slice(2) as Filter[];
          this.stats.reqs.push([message[1] as string, filters]);
          const slow = this.slowReqs;
          if (slow?.match(message[1] as string, filters)) await new Promise((r) => setTimeout(r, slow.ms).unref());
          const held = this.held;
          if (held && filters.some((f) => f['#p']?.some((p) => held.pubkeys.has(p)))) await held.release;
          const result = await next();
          this.stats.subscribed.push([message[1] as string, filters]);
          return result;
        }
        if (message[0] !== 'EVENT') return next();
        const event = message[1] as Event;
        const refuse = this.refuseNext.get(event.pubkey) ?? 0;
        if (refuse > 0) {
          this.refuseNext.set(event.pubkey, refuse - 1);
          ctx.sendMessage(['OK', event.id, false, 'error: injected failure']);
          return { messageType: 'EVENT', success: false } as never;
        }
        const result = await next();
        if ((result as { success?: boolean })?.success) {
          const list = this.stats.publishedBy.get(event.pubkey) ?? [];
          if (!list.some((e) => e.id === event.id)) list.push(event);
          this.stats.publishedBy.set(event.pubkey, list);
          if (this.options.storeEphemeral && isEphemeral(event.kind)) this.repo.upsert(event);
        }
        return result;
      },
    };
  }
}

const silentLogger = {
  setLogLevel() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export async function startTestRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  return new TestRelay(options).start();
}
