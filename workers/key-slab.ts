// Fixed-size slots for secret key material in a few large buffers. A key cache holds a hundred thousand
// keys; a Uint8Array with its own ArrayBuffer costs about 300 bytes of heap beyond its data, a slot costs
// its data. Slots are reused after release, so a released slot is wiped at once and nothing outside the
// cache keeps a view on one (KeyCache hands out the slot through an entry that stops answering on release).
export const SLOTS_PER_CHUNK = 512;

export class KeySlab {
  private readonly chunks: Uint8Array[] = [];
  private readonly free: number[] = [];
  private used = 0;

  constructor(readonly slotBytes: number) {
    if (!Number.isInteger(slotBytes) || slotBytes < 1) throw new RangeError('slotBytes must be a positive integer');
  }

  /** Slots in use. */
  get size(): number {
    return this.used;
  }

  /** A slot holding a copy of bytes (exactly slotBytes long). */
  store(bytes: Uint8Array): number {
    if (bytes.length !== this.slotBytes) throw new RangeError('wrong slot size');
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.chunks.length * SLOTS_PER_CHUNK;
      this.chunks.push(new Uint8Array(SLOTS_PER_CHUNK * this.slotBytes));
      for (let s = slot + SLOTS_PER_CHUNK - 1; s > slot; s--) this.free.push(s);
    }
    this.view(slot).set(bytes);
    this.used++;
    return slot;
  }

  /** The slot's bytes, a view: valid until the slot is released. */
  view(slot: number): Uint8Array {
    const chunk = this.chunks[Math.floor(slot / SLOTS_PER_CHUNK)]!;
    const at = (slot % SLOTS_PER_CHUNK) * this.slotBytes;
    return chunk.subarray(at, at + this.slotBytes);
  }

  /** Wipes the slot and makes it free for the next store. */
  release(slot: number): void {
    this.view(slot).fill(0);
    this.free.push(slot);
    this.used--;
  }
}
