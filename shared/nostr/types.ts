export interface UnsignedEvent {
  kind: number;
  content: string;
  tags: string[][];
  created_at: number;
}

export interface NostrEvent extends UnsignedEvent {
  id: string;
  pubkey: string;
  sig: string;
}
