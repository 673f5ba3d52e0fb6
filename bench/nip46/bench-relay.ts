// A small Nostr relay for the NIP-46 benchmark. It does what a production relay such as strfry does on
// the path of a bunker round trip (verify each event's id and signature with libsecp256k1, answer OK,
// fan the event out to the matching subscriptions) and nothing else: no storage, no history. Tests use
// @nostr-relay/core; it verifies with pure-JS noble at about 1.5 ms an event, which would make the relay,
// not Keyfarm, the thing measured on two cores.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { verifyEvent } from '../../shared/nostr/event.js';
import type { NostrEvent } from '../../shared/nostr/types.js';

export interface RelayFilter {
  ids?: string[];
  kinds?: number[];
  authors?: string[];
  since?: number;
  until?: number;
  '#p'?: string[];
}

export function matchesFilter(event: NostrEvent, f: RelayFilter): boolean {
  if (f.ids && !f.ids.includes(event.id)) return false;
  if (f.kinds && !f.kinds.includes(event.kind)) return false;
  if (f.authors && !f.authors.includes(event.pubkey)) return false;
  if (f.since !== undefined && event.created_at < f.since) return false;
  if (f.until !== undefined && event.created_at > f.until) return false;
  const p = f['#p'];
  if (p && !event.tags.some((t) => t[0] === 'p' && p.includes(t[1]!))) return false;
  return true;
}

export interface BenchRelayStats {
  events: number;
  rejected: number;
  delivered: number;
}

export class BenchRelay {
  readonly stats: BenchRelayStats = { events: 0, rejected: 0, delivered: 0 };
  private readonly subscriptions = new Map<WebSocket, Map<string, RelayFilter[]>>();
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;

  async start(port = 0): Promise<number> {
    const http = createServer();
    const wss = new WebSocketServer({ server: http, maxPayload: 512 * 1024 });
    wss.on('connection', (ws) => {
      this.subscriptions.set(ws, new Map());
      ws.on('message', (data) => this.onMessage(ws, data.toString()));
      ws.on('close', () => this.subscriptions.delete(ws));
      ws.on('error', () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, '127.0.0.1', () => resolve());
    });
    this.http = http;
    this.wss = wss;
    return (http.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const ws of this.subscriptions.keys()) ws.terminate();
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
  }

  private onMessage(ws: WebSocket, text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(message)) return;
    const [type, a, ...rest] = message as [string, unknown, ...unknown[]];
    if (type === 'EVENT') this.onEvent(ws, a as NostrEvent);
    else if (type === 'REQ' && typeof a === 'string') {
      this.subscriptions.get(ws)?.set(a, rest as RelayFilter[]);
      ws.send(JSON.stringify(['EOSE', a]));
    } else if (type === 'CLOSE' && typeof a === 'string') this.subscriptions.get(ws)?.delete(a);
  }

  private onEvent(from: WebSocket, event: NostrEvent): void {
    if (!verifyEvent(event)) {
      this.stats.rejected++;
      from.send(JSON.stringify(['OK', (event as { id?: unknown })?.id ?? '', false, 'invalid: bad id or signature']));
      return;
    }
    this.stats.events++;
    from.send(JSON.stringify(['OK', event.id, true, '']));
    const text = JSON.stringify(event);
    for (const [ws, subs] of this.subscriptions) {
      for (const [id, filters] of subs) {
        if (filters.some((f) => matchesFilter(event, f))) {
          ws.send(`["EVENT",${JSON.stringify(id)},${text}]`);
          this.stats.delivered++;
        }
      }
    }
  }
}
