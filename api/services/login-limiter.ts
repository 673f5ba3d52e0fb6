// Failed password checks, counted in Redis (every api instance shares the counts) by one Lua step that
// tests the limits and counts the attempt together, before the password hash runs: N parallel guesses get
// at most the limit of real checks. A check that succeeds gives its count back.
//
// Limits (so an attacker is slowed without locking the owner out):
// - per account and client address (LOGIN_LIMIT_ACCOUNT_IP): an attacker's address waits, the owner's not;
// - per client address over all accounts (LOGIN_LIMIT_IP): one address spraying many accounts;
// - per account from addresses the owner has not logged in from lately (LOGIN_LIMIT_ACCOUNT): many
//   addresses guessing one account. Addresses of successful logins are remembered (hashed) per account for
//   LOGIN_KNOWN_ADDRESS_DAYS, so the owner's own address never waits on this one.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { luaCommand, type RedisClient } from '../../shared/redis.js';
import type { Config } from '../../shared/config.js';
import { clientKey, parseRate, type Rate } from '../../shared/net/client-address.js';

const LUA = readFileSync(new URL('./login-limiter.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmLoginLimiter';
/** Known addresses kept per account; the ones expiring soonest are dropped past this. */
const MOST_KNOWN_ADDRESSES = 20;

type LimiterCommand = (
  k1: string,
  k2: string,
  k3: string,
  k4: string,
  ...args: (string | number)[]
) => Promise<[number, number]>;

export interface LoginLimits {
  accountClient: Rate;
  client: Rate;
  account: Rate;
  knownAddressMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  accountClient: { max: 5, windowMs: 15 * 60_000 },
  client: { max: 20, windowMs: 15 * 60_000 },
  account: { max: 20, windowMs: 3_600_000 },
  knownAddressMs: 30 * 86_400_000,
};

export function loginLimits(config: Config): LoginLimits {
  return {
    accountClient: parseRate(config.LOGIN_LIMIT_ACCOUNT_IP),
    client: parseRate(config.LOGIN_LIMIT_IP),
    account: parseRate(config.LOGIN_LIMIT_ACCOUNT),
    knownAddressMs: config.LOGIN_KNOWN_ADDRESS_DAYS * 86_400_000,
  };
}

/** A counted attempt: settle it with succeed() or release(); a failed check needs nothing more. */
export interface LoginAttempt {
  /** Seconds to wait when refused; 0 when the check may run. */
  retryAfterSeconds: number;
  succeed(): Promise<void>;
  /** The check never ran (an error before it): the attempt is not counted. */
  release(): Promise<void>;
}

export interface AttemptOptions {
  /** Count toward the per-account limit and remember the owner's addresses (user accounts, not the operators). */
  perAccount: boolean;
}

export class LoginLimiter {
  private readonly command: LimiterCommand;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
  ) {
    this.command = luaCommand<LimiterCommand>(redis, COMMAND, 4, LUA);
  }

  /** Fixed-length keys: a hash of the account and of the normalised client address. */
  keys(account: string, ip: string): { client: string; keys: [string, string, string, string] } {
    const acct = createHash('sha256').update(account.toLowerCase()).digest('hex').slice(0, 32);
    const client = clientKey(ip);
    // One hash tag for every login key: the script's four keys must share a cluster slot, and they mix
    // accounts and addresses. Login checks are few (each costs a password hash), so one slot holds them.
    const p = `${this.prefix}:login:{all}`;
    return {
      client,
      keys: [`${p}:fail:ac:${acct}:${client}`, `${p}:fail:c:${client}`, `${p}:fail:a:${acct}`, `${p}:known:${acct}`],
    };
  }

  private test(op: 'attempt' | 'peek', account: string, ip: string, opts: AttemptOptions) {
    const { client, keys } = this.keys(account, ip);
    const { accountClient, client: perClient, account: perAccount } = this.limits;
    return this.command(
      ...keys,
      op,
      Date.now(),
      client,
      accountClient.max,
      accountClient.windowMs,
      perClient.max,
      perClient.windowMs,
      opts.perAccount ? perAccount.max : -1,
      perAccount.windowMs,
    );
  }

  /** Seconds this client must wait before a check, without counting one (0: none). */
  async retryAfter(account: string, ip: string, opts: AttemptOptions): Promise<number> {
    const [waitMs] = await this.test('peek', account, ip, opts);
    return waitMs > 0 ? Math.max(1, Math.ceil(waitMs / 1000)) : 0;
  }

  /** Counts a check about to run, unless this client must wait (then nothing is counted). */
  async attempt(account: string, ip: string, opts: AttemptOptions): Promise<LoginAttempt> {
    const { client, keys } = this.keys(account, ip);
    const [waitMs, counted] = await this.test('attempt', account, ip, opts);
    const remember = opts.perAccount ? this.limits.knownAddressMs : 0;
    return {
      retryAfterSeconds: waitMs > 0 ? Math.max(1, Math.ceil(waitMs / 1000)) : 0,
      succeed: async () => {
        await this.command(...keys, 'succeed', Date.now(), client, counted, remember, MOST_KNOWN_ADDRESSES);
      },
      release: async () => {
        await this.command(...keys, 'release', Date.now(), client, counted);
      },
    };
  }
}
