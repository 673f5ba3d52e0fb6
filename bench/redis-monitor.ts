// Which commands clients send Redis and what each costs it: for a few seconds every command is slow-logged
// (slowlog-log-slower-than 0), then the log is tallied by command, scripts (EVALSHA) named by matching their
// SHA1 against the scripts Keyfarm loads. A command a script ran is logged too (client "?:0"):
// it is tallied as "lua NAME", apart from what clients sent. A diagnosis: logging every command slows
// Redis (a script's time includes logging its own commands), so the bench's per-request figures come from
// redis-cost.ts over unlogged runs; only the counts here compare.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from './farm-process.js';

export interface SentCommand {
  /** "evalsha shard-queue", "xreadgroup", "lua hset" (run inside a script), ... */
  command: string;
  calls: number;
  usec: number;
}

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

const KEYFARM_SCRIPTS = [
  'shared/farm/shard-queue.lua',
  'shared/farm/shard-metrics.lua',
  'api/services/login-limiter.lua',
  'api/plugins/rate-limits.lua',
  'relay-ingest/unbound-client-limit.lua',
  'workers/shard-leases.lua',
];

/** SHA1 -> name of every Lua script Keyfarm defines. */
export async function knownScripts(): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const rel of KEYFARM_SCRIPTS) {
    try {
      names.set(sha1(readFileSync(path.join(PROJECT_ROOT, rel), 'utf8')), path.basename(rel, '.lua'));
    } catch {
      // a script that moved: shown by its SHA
    }
  }
  return names;
}

type SlowlogEntry = [number, number, number, string[], string?, ...unknown[]];
/** The client address the slow log gives a command a script ran. */
const SCRIPT_CLIENT = '?:0';

/** Logs every command Redis at `url` is sent while `during` runs, and tallies them. */
export async function sentCommands(url: string, during: () => Promise<unknown>): Promise<SentCommand[]> {
  const scripts = await knownScripts();
  const redis = new Redis(url);
  const [threshold, maxLen] = await Promise.all([
    redis.config('GET', 'slowlog-log-slower-than') as Promise<string[]>,
    redis.config('GET', 'slowlog-max-len') as Promise<string[]>,
  ]);
  const tally = new Map<string, SentCommand>();
  try {
    await redis.config('SET', 'slowlog-max-len', '2000000');
    await redis.config('SET', 'slowlog-log-slower-than', '0');
    await redis.slowlog('RESET');
    await during();
    await redis.config('SET', 'slowlog-log-slower-than', threshold[1] ?? '10000');
    const entries = (await redis.slowlog('GET', -1)) as SlowlogEntry[];
    for (const [, , usec, args, client] of entries) {
      let name = String(args[0] ?? '').toLowerCase();
      if (name === 'config' || name === 'slowlog') continue;
      if (client === SCRIPT_CLIENT) name = `lua ${name}`;
      if (name === 'evalsha') name += ` ${scripts.get(String(args[1])) ?? String(args[1]).slice(0, 8)}`;
      const t = tally.get(name) ?? { command: name, calls: 0, usec: 0 };
      t.calls++;
      t.usec += usec;
      tally.set(name, t);
    }
  } finally {
    await redis.config('SET', 'slowlog-log-slower-than', threshold[1] ?? '10000').catch(() => undefined);
    await redis.config('SET', 'slowlog-max-len', maxLen[1] ?? '128').catch(() => undefined);
    await redis.slowlog('RESET').catch(() => undefined);
    redis.disconnect();
  }
  return [...tally.values()].sort((a, b) => b.usec - a.usec);
}
