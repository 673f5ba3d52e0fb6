// Login failures are counted per account and per client IP in Redis (so every api instance shares the
// count); past the limit, logins are refused with 429 until the window passes.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface LoginLimits {
  perAccount: number;
  perIp: number;
  windowSeconds: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perAccount: 5, perIp: 20, windowSeconds: 900 };

export class LoginLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
  ) {}

  private keys(email: string, ip: string): [string, string] {
    const account = createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 32);
    return [`${this.prefix}:loginfail:acct:${account}`, `${this.prefix}:loginfail:ip:${ip}`];
  }

  /** Seconds to wait before trying again, or 0 when a login may be attempted. */
  async retryAfter(email: string, ip: string): Promise<number> {
    const [acct, addr] = this.keys(email, ip);
    const replies = (await this.redis.multi().get(acct).get(addr).ttl(acct).ttl(addr).exec()) ?? [];
    const [a, i, ta, ti] = replies.map(([, value]) => value);
    const over = (count: unknown, limit: number) => Number(count ?? 0) >= limit;
    if (over(a, this.limits.perAccount)) return Math.max(1, Number(ta));
    if (over(i, this.limits.perIp)) return Math.max(1, Number(ti));
    return 0;
  }

  async fail(email: string, ip: string): Promise<void> {
    const multi = this.redis.multi();
    for (const key of this.keys(email, ip)) multi.incr(key).expire(key, this.limits.windowSeconds, 'NX');
    await multi.exec();
  }

  async succeed(email: string, ip: string): Promise<void> {
    await this.redis.del(this.keys(email, ip)[0]);
  }
}
