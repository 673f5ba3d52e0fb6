// A NIP-46 client for load: one WebSocket to the relay, NIP-44 v2 with the conversation key computed
// once, requests signed with libsecp256k1, responses matched to requests by id. Responses are not
// re-verified here: the relay has already checked every event's id and signature before fanning it out.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { finalizeEvent } from '../../shared/nostr/event.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { getConversationKey, nip44Decrypt, nip44Encrypt } from '../../shared/nostr/nip44.js';
import type { NostrEvent } from '../../shared/nostr/types.js';

export interface BunkerPointer {
  pubkey: string;
  relays: string[];
  secret: string;
}

/** bunker://<pubkey>?relay=…&secret=… */
export function parseBunkerUrl(url: string): BunkerPointer {
  const u = new URL(url);
  if (u.protocol !== 'bunker:') throw new Error('not a bunker:// URL');
  return {
    pubkey: u.hostname || u.pathname.replace(/^\/+/, ''),
    relays: u.searchParams.getAll('relay'),
    secret: u.searchParams.get('secret') ?? '',
  };
}

export interface Nip46Reply {
  result?: string;
  error?: string;
}

interface Pending {
  resolve(reply: Nip46Reply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class BunkerLoadClient {
  private readonly sk = generateSecretKey();
  readonly pubkey = getPublicKeyHex(this.sk);
  private readonly convKey: Uint8Array;
  private readonly pending = new Map<string, Pending>();
  private ws: WebSocket | undefined;

  constructor(
    readonly bunker: BunkerPointer,
    private readonly relayUrl: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.convKey = getConversationKey(this.sk, bunker.pubkey);
  }

  async open(): Promise<void> {
    const ws = new WebSocket(this.relayUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('message', (data) => this.onMessage(data.toString()));
    ws.on('close', () => this.failAll(new Error('relay connection closed')));
    const since = Math.floor(Date.now() / 1000) - 10;
    ws.send(
      JSON.stringify(['REQ', 'replies', { kinds: [24133], authors: [this.bunker.pubkey], '#p': [this.pubkey], since }]),
    );
    this.ws = ws;
  }

  close(): void {
    this.ws?.close();
  }

  /** Sends `connect` with the secret until the bunker answers (it may not listen for a new bunker yet). */
  async connect(deadlineMs = 20_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const reply: Nip46Reply = await this.request('connect', [this.bunker.pubkey, this.bunker.secret], 2000).catch(
        (err: Error) => ({ error: err.message }),
      );
      if (reply.result === 'ack' || reply.result === this.bunker.secret) return;
      if (Date.now() > end) throw new Error(`connect: ${reply.error ?? reply.result}`);
    }
  }

  request(method: string, params: string[], timeoutMs = this.timeoutMs): Promise<Nip46Reply> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    const id = randomBytes(8).toString('hex');
    const content = nip44Encrypt(JSON.stringify({ id, method, params }), this.convKey);
    const event = finalizeEvent(
      { kind: 24133, created_at: Math.floor(Date.now() / 1000), tags: [['p', this.bunker.pubkey]], content },
      this.sk,
      this.pubkey,
    );
    return new Promise<Nip46Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify(['EVENT', event]));
    });
  }

  private onMessage(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(message) || message[0] !== 'EVENT') return;
    const event = message[2] as NostrEvent;
    let reply: { id?: string } & Nip46Reply;
    try {
      reply = JSON.parse(nip44Decrypt(event.content, this.convKey));
    } catch {
      return;
    }
    const p = reply.id ? this.pending.get(reply.id) : undefined;
    if (!p) return;
    this.pending.delete(reply.id!);
    clearTimeout(p.timer);
    p.resolve(reply);
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
