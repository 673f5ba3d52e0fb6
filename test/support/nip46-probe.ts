// A minimal NIP-46 client for failure tests: makes NIP-44 requests to one bunker, publishes them to a test
// relay, and reads the bunker's responses from what the relays accepted (no subscription to lose).
import { bytesToHex } from '@noble/hashes/utils.js';
import { finalizeEvent, generateSecretKey, getPublicKey, nip44, type Event } from 'nostr-tools';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import WebSocket from 'ws';
import { recordSecret } from './logs.js';
import type { TestRelay } from './relay.js';

useWebSocketImplementation(WebSocket);

export interface Nip46Answer {
  id: string;
  result?: string;
  error?: string;
}

export class Nip46Probe {
  readonly bunkerPubkey: string;
  /** The connect secret from the bunker URL. */
  readonly secret: string;
  private readonly sk = generateSecretKey();
  readonly pubkey = getPublicKey(this.sk);
  private seq = 0;

  constructor(bunkerUrl: string) {
    const url = new URL(bunkerUrl);
    this.bunkerPubkey = url.hostname || url.pathname.replace(/^\/+/, '');
    this.secret = url.searchParams.get('secret') ?? '';
    recordSecret(bytesToHex(this.sk));
    recordSecret(this.secret);
  }

  /** A signed kind-24133 request (created now unless `createdAt` says when); its id (for answerOn) is the returned `id`. */
  request(method: string, params: string[], createdAt = Math.floor(Date.now() / 1000)): { id: string; event: Event } {
    const id = `probe-${++this.seq}-${Date.now()}`;
    const content = nip44.encrypt(
      JSON.stringify({ id, method, params }),
      nip44.getConversationKey(this.sk, this.bunkerPubkey),
    );
    const event = finalizeEvent(
      { kind: 24133, created_at: createdAt, tags: [['p', this.bunkerPubkey]], content },
      this.sk,
    );
    return { id, event };
  }

  async publish(event: Event, relayUrl: string): Promise<void> {
    const relay = await Relay.connect(relayUrl);
    try {
      await relay.publish(event);
    } finally {
      relay.close();
    }
  }

  /** The bunker's answers to request `id` that `relay` accepted. */
  answersOn(relay: TestRelay, id: string): Nip46Answer[] {
    const key = nip44.getConversationKey(this.sk, this.bunkerPubkey);
    return relay
      .published(this.bunkerPubkey)
      .filter((e) => e.tags.some((t) => t[0] === 'p' && t[1] === this.pubkey))
      .map((e) => JSON.parse(nip44.decrypt(e.content, key)) as Nip46Answer)
      .filter((a) => a.id === id);
  }
}
