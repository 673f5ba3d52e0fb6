// What Redis spends per request: INFO commandstats, INFO stats and INFO cpu of a redis-server, read before
// and after a measured window, the difference divided by the requests answered in it.
// - commands: total_commands_processed, which counts every command Redis executed, those a Lua script or
//   a MULTI ran included (the figure the baseline of 7.8 per request was taken with);
// - cpuUs: used_cpu_sys + used_cpu_user of the server process (every thread of it), in µs;
// - perCommand: calls and µs of each command name (commandstats does not tell one script from another).
// The INFO calls themselves are taken out of the counts.
import type { Redis } from 'ioredis';
import { round } from './stats.js';

export interface RedisCounters {
  commands: number;
  cpuUs: number;
  byCommand: Record<string, { calls: number; usec: number }>;
}

/** What Redis does with the farm idle (leases, stalled-job checks, blocking reads timing out), per second. */
export interface IdleRate {
  seconds: number;
  commandsPerS: number;
  cpuUsPerS: number;
}

export interface RedisCost {
  requests: number;
  commandsPerRequest: number;
  cpuUsPerRequest: number;
  /** Jobs run (replies published: one per job) and requests per job. */
  jobs: number;
  itemsPerJob: number;
  /**
   * The same less what Redis does idle over as long (the farm's background work, which does not grow with
   * the request rate): what one more request costs.
   */
  marginal?: { commandsPerRequest: number; cpuUsPerRequest: number; commandsPerJob: number; cpuUsPerJob: number };
  /** Per command name, calls and µs per request, largest first (a script's µs include the commands it ran). */
  perCommand: { command: string; callsPerRequest: number; usPerRequest: number }[];
}

/** The INFO commands of one readCounters. */
const INFO_COMMANDS_PER_READ = 3;

export async function readCounters(redis: Redis): Promise<RedisCounters> {
  const [stats, cpu, cmd] = await Promise.all([redis.info('stats'), redis.info('cpu'), redis.info('commandstats')]);
  const num = (text: string, field: string) => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  const byCommand: RedisCounters['byCommand'] = {};
  for (const m of cmd.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    byCommand[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  return {
    commands: num(stats, 'total_commands_processed'),
    cpuUs: (num(cpu, 'used_cpu_sys') + num(cpu, 'used_cpu_user')) * 1e6,
    byCommand,
  };
}

/**
 * `servers`: how many servers the counters add up (each served the INFO reads); `idle` and `wallS`: the
 * idle rate to take out over the window's length.
 */
export function costBetween(
  before: RedisCounters,
  after: RedisCounters,
  requests: number,
  servers = 1,
  idle?: { rate: IdleRate; wallS: number },
): RedisCost {
  const per = (n: number) => (requests > 0 ? n / requests : Number.NaN);
  const rows: RedisCost['perCommand'] = [];
  for (const [name, a] of Object.entries(after.byCommand)) {
    if (name === 'info') continue;
    const b = before.byCommand[name] ?? { calls: 0, usec: 0 };
    const calls = a.calls - b.calls;
    if (calls <= 0) continue;
    rows.push({ command: name, callsPerRequest: per(calls), usPerRequest: per(a.usec - b.usec) });
  }
  const commands = after.commands - before.commands - INFO_COMMANDS_PER_READ * servers;
  const cpuUs = after.cpuUs - before.cpuUs;
  const calls = (name: string) => (after.byCommand[name]?.calls ?? 0) - (before.byCommand[name]?.calls ?? 0);
  const jobs = calls('publish') + calls('spublish');
  const marginal = idle && {
    commands: commands - idle.rate.commandsPerS * idle.wallS,
    cpuUs: cpuUs - idle.rate.cpuUsPerS * idle.wallS,
  };
  return {
    requests,
    commandsPerRequest: round(per(commands), 2),
    cpuUsPerRequest: round(per(cpuUs), 1),
    jobs,
    itemsPerJob: round(jobs > 0 ? requests / jobs : Number.NaN, 2),
    ...(marginal && jobs > 0
      ? {
          marginal: {
            commandsPerRequest: round(per(marginal.commands), 2),
            cpuUsPerRequest: round(per(marginal.cpuUs), 1),
            commandsPerJob: round(marginal.commands / jobs, 1),
            cpuUsPerJob: round(marginal.cpuUs / jobs),
          },
        }
      : {}),
    perCommand: rows
      .map((r) => ({ ...r, callsPerRequest: round(r.callsPerRequest, 3), usPerRequest: round(r.usPerRequest, 2) }))
      .sort((x, y) => y.usPerRequest - x.usPerRequest),
  };
}

/** Redis's idle rate: the counters over `seconds` with no load. */
export async function idleRate(read: () => Promise<RedisCounters>, seconds: number, servers = 1): Promise<IdleRate> {
  const before = await read();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await read();
  const wall = (performance.now() - t0) / 1000;
  return {
    seconds: round(wall, 2),
    commandsPerS: round((after.commands - before.commands - INFO_COMMANDS_PER_READ * servers) / wall, 1),
    cpuUsPerS: round((after.cpuUs - before.cpuUs) / wall),
  };
}

/** The counters of several servers (a cluster's masters) added up. */
export function sumCounters(list: readonly RedisCounters[]): RedisCounters {
  const total: RedisCounters = { commands: 0, cpuUs: 0, byCommand: {} };
  for (const c of list) {
    total.commands += c.commands;
    total.cpuUs += c.cpuUs;
    for (const [name, v] of Object.entries(c.byCommand)) {
      const t = (total.byCommand[name] ??= { calls: 0, usec: 0 });
      t.calls += v.calls;
      t.usec += v.usec;
    }
  }
  return total;
}

/** The Redis servers whose counters a run reads: one plain server, or each master of a cluster. */
export interface CounterSource {
  name: string;
  client: Redis;
}
