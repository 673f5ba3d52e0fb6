// Which bunker pubkeys one relay subscription carries. Relays cap filter sizes, so the pubkeys of a relay
// are spread over subscriptions of at most `chunkSize`; a pubkey keeps its subscription while it lives,
// so adding or removing one re-sends only the one subscription that changed.

export class SubscriptionPlan {
  private readonly chunks: Set<string>[] = [];
  private readonly chunkOf = new Map<string, number>();

  constructor(private readonly chunkSize = 500) {}

  /** Makes the plan hold exactly `pubkeys`; returns the indexes of the chunks that changed. */
  assign(pubkeys: Iterable<string>): number[] {
    const want = new Set(pubkeys);
    const changed = new Set<number>();
    for (const [pk, i] of this.chunkOf) {
      if (want.has(pk)) continue;
      this.chunks[i]!.delete(pk);
      this.chunkOf.delete(pk);
      changed.add(i);
    }
    for (const pk of want) {
      if (this.chunkOf.has(pk)) continue;
      let i = this.chunks.findIndex((c) => c.size < this.chunkSize);
      if (i === -1) i = this.chunks.push(new Set()) - 1;
      this.chunks[i]!.add(pk);
      this.chunkOf.set(pk, i);
      changed.add(i);
    }
    return [...changed].sort((a, b) => a - b);
  }

  /** The pubkeys of chunk `i` (empty: the subscription should be closed). */
  chunk(i: number): string[] {
    return [...(this.chunks[i] ?? [])];
  }

  get size(): number {
    return this.chunkOf.size;
  }
}
