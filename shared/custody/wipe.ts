// Joining decrypted pieces without leaving copies behind: Buffer.concat may place small results in
// Node's shared allocation pool and leaves its inputs intact, so secrets would linger in both.

/** Copies `parts` into one fresh (unpooled) buffer and zeroes the parts. */
export function concatAndWipe(parts: Buffer[]): Buffer {
  const out = Buffer.alloc(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    part.copy(out, offset);
    offset += part.length;
    part.fill(0);
  }
  return out;
}
