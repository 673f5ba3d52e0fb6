// The shard count on a Redis Cluster: for each SHARD_COUNT given, an all-in-one farm (in this process) on
// a fresh local cluster of 3 masters and 3 replicas, HTTP sign_event at concurrency 64 for a few seconds.
// Reports requests/s, requests per job (each job sends one reply: SPUBLISH calls) and each master's share
// of the commands. A quick look, not the bench: client and farm share this process and its cores.
//   DATABASE_URL=... REDIS_URL=... node dist/bench/cluster-shards.js [3,4,16] [seconds]
import { performance } from 'node:perf_hooks';
import { authorizeApp, registerUser, rpc } from '../test/support/client.js';
import { startTestFarm } from '../test/support/farm.js';
import { startLocalRedisCluster, type LocalRedisCluster } from '../test/support/redis-cluster.js';

const CONCURRENCY = 64;
const USERS = 64;

async function counters(
  cluster: LocalRedisCluster,
  ports: number[],
): Promise<{ commands: number[]; spublish: number }> {
  const commands: number[] = [];
  let spublish = 0;
  for (const port of ports) {
    const stats = String(await cluster.node(port).info('stats'));
    commands.push(Number(/^total_commands_processed:(\d+)/m.exec(stats)?.[1] ?? 0));
    const cmd = String(await cluster.node(port).info('commandstats'));
    spublish += Number(/^cmdstat_spublish:calls=(\d+)/m.exec(cmd)?.[1] ?? 0);
  }
  return { commands, spublish };
}

async function measure(shards: number, seconds: number): Promise<string> {
  const cluster = await startLocalRedisCluster();
  const farm = await startTestFarm(`cluster-shards-${shards}`, {
    ...cluster.env,
    SHARD_COUNT: String(shards),
    LOG_LEVEL: 'warn',
  });
  try {
    const tokens: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const u = await registerUser(farm.url);
      tokens.push((await authorizeApp(farm.url, u.session, 'full')).access_token);
    }
    const note = { kind: 1, content: 'bench', tags: [], created_at: Math.floor(Date.now() / 1000) };
    // Warm the key cache, then count.
    await Promise.all(tokens.map((t) => rpc(farm.url, t, 'sign_event', [note])));
    const masters = await cluster.masters();
    const before = await counters(cluster, masters);
    let ok = 0;
    let failed = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, i) => {
        while (performance.now() < end) {
          const res = await rpc(farm.url, tokens[i % tokens.length]!, 'sign_event', [note]);
          if (res.status === 200) ok++;
          else failed++;
        }
      }),
    );
    const after = await counters(cluster, masters);
    const jobs = after.spublish - before.spublish;
    const perMaster = after.commands.map((c, i) => c - before.commands[i]!);
    const total = perMaster.reduce((a, b) => a + b, 0);
    const shares = perMaster.map((c) => `${Math.round((100 * c) / total)}%`).join('/');
    return `| ${shards} | ${(ok / seconds).toFixed(0)} | ${failed} | ${(ok / Math.max(1, jobs)).toFixed(1)} | ${(total / Math.max(1, ok)).toFixed(1)} | ${shares} |`;
  } finally {
    await farm.stop();
    await cluster.stop();
  }
}

const counts = (process.argv[2] ?? '3,4,16').split(',').map(Number);
const seconds = Number(process.argv[3] ?? 5);
const rows = [
  '| SHARD_COUNT | sign_event/s | errors | requests per job | Redis commands per request | commands per master |',
  '|---|---|---|---|---|---|',
];
for (const n of counts) rows.push(await measure(n, seconds));
process.stdout.write(`${rows.join('\n')}\n`);
process.exit(0);
