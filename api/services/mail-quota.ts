// How many mails one address may receive per window (EMAIL_LIMIT_PER_ADDRESS), counted in Redis so every api
// replica shares the count. Every request that could mail an address is counted, whether or not an account
// has that address, so the count tells nothing about accounts; past the limit the request is answered as
// usual and no mail goes out. The key holds the address's SHA-256, not the address.
import { createHash } from 'node:crypto';
import { parseRate } from '../../shared/net/client-address.js';
import type { ApiContext } from '../context.js';
import { countInWindow } from '../plugins/rate-limits.js';

export async function mayMail(ctx: ApiContext, address: string): Promise<boolean> {
  const { max, windowMs } = parseRate(ctx.config.EMAIL_LIMIT_PER_ADDRESS);
  const digest = createHash('sha256').update(address.trim().toLowerCase()).digest('hex');
  return (await countInWindow(ctx.redis, `${ctx.config.KEY_PREFIX}:ratelimit:mail:${digest}`, windowMs)) <= max;
}
