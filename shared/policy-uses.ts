// How many times each authorization has used its policy's `max_uses`, counted in Redis so every api and
// worker process, on both doors, shares one count. The test and the count are one Lua step: N requests at
// once take at most the remaining uses. A use refused here is not counted.
import { luaCommand, type RedisClient } from './redis.js';

const COMMAND = 'keyfarmTakeUse';
// KEYS[1] the count; ARGV[1] the maximum. Returns the uses taken, or -1 when none is left.
const LUA = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -1 end
return redis.call('INCR', KEYS[1])
`;

type TakeUse = (key: string, max: number) => Promise<number>;

export const USES_EXHAUSTED = 'this authorization has used all the uses its policy allows';

export class PolicyUses {
  private readonly take: TakeUse;

  /**
   * Defines the script on the connection at once: an auto-pipeline opened on it before the definition
   * (any command sent in the same tick) lacks the command, and a first use in that tick would fail.
   */
  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    this.take = luaCommand<TakeUse>(redis, COMMAND, 1, LUA);
  }

  key(authorizationId: string): string {
    return `${this.prefix}:uses:${authorizationId}`;
  }

  /** Takes one use of the authorization's `max`; false when they are all used. */
  async takeOne(authorizationId: string, max: number): Promise<boolean> {
    return (await this.take(this.key(authorizationId), max)) >= 0;
  }
}
