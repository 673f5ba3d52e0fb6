// `node dist/bench/queue-cycle.js [--jobs N] [--rounds N] [--variant NAME=DIST ...]`: Redis's CPU per job of
// the shard queue's own cycle, without the farm: an enqueue of a job of 9 sign_event (item metadata and
// 1.6 KB of sealed calls), the consumer's read, the activity append, the completion and the reply, one job
// in flight per shard on 4 shards, against the Redis of REDIS_URL. Each variant is a build's dist
// directory (default: this one), its own ShardQueue and reply channel code loaded from there, run in
// alternating order, so a change to the queue's Redis side can be told from the noise of a shared machine
// (the farm's closed loop makes jobs smaller when they come back sooner, which hides it there).
// Reported: µs of Redis CPU (INFO cpu) per job for each round, and the median per variant.
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { median } from './stats.js';

const SHARDS = 4;
const ITEMS = 9;
const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A build's module, loaded from its dist directory: another version's, so untyped here. */
type Module = any;
interface Build {
  name: string;
  queue: Module;
  replies: Module;
  shard: Module;
}

async function load(name: string, dist: string): Promise<Build> {
  const from = (p: string) => import(pathToFileURL(path.join(dist, p)).href);
  return {
    name,
    queue: await from('shared/farm/shard-queue.js'),
    replies: await from('shared/farm/replies.js'),
    shard: await from('shared/shard.js'),
  };
}

const hex = (n: number) => randomBytes(n).toString('hex');

function jobData(replyTo: string) {
  return {
    type: 'rpc',
    replyTo,
    door: 'http',
    items: Array.from({ length: ITEMS }, (_, i) => ({
      id: `AbCdEfGh.${(1000 + i).toString(36)}`,
      traceId: randomUUID(),
      authorizationId: randomUUID(),
      keyId: randomUUID(),
      pubkey: hex(32),
      method: 'sign_event',
    })),
    calls: `kfsealed1:${randomBytes(1650).toString('base64')}`,
  };
}

const activityRows = () =>
  JSON.stringify(Array.from({ length: ITEMS }, () => [randomUUID(), 'sign_event', 'http', Date.now(), 1, hex(32)]));

async function redisCpuUs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const n = (f: string) => Number(new RegExp(`^${f}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (n('used_cpu_sys') + n('used_cpu_user')) * 1e6;
}

async function round(build: Build, url: string, admin: Redis, jobs: number): Promise<number> {
  const prefix = `queue-cycle-${build.name}-${hex(3)}`;
  const names = new build.shard.ShardNames(prefix);
  const [api, commands, reader, appender, subscriber] = [
    new Redis(url, { enableAutoPipelining: true }),
    new Redis(url, { enableAutoPipelining: true }),
    new Redis(url),
    new Redis(url, { enableAutoPipelining: true }),
    new Redis(url),
  ];
  const ingress = new build.queue.ShardQueue(api, names, { limit: 1_000_000 });
  const worker = new build.queue.ShardQueue(commands, names, { limit: 1_000_000 });
  for (let s = 0; s < SHARDS; s++) await worker.ensureGroup(s);
  const waiting = new Map<string, () => void>();
  const heard = (m: string) => {
    const parsed = JSON.parse(m) as { jobId?: string; reply?: { jobId?: string } };
    waiting.get(parsed.jobId ?? parsed.reply?.jobId ?? '')?.();
  };
  // Before the reply channels per shard: subscribeReplies(subscriber, names, instanceId, onReply).
  if (build.replies.subscribeReplies.length === 4)
    await build.replies.subscribeReplies(subscriber, names, 'api-x', heard);
  else await build.replies.subscribeReplies(subscriber, names, 'api-x', SHARDS, heard);
  const activityKey = `${prefix}:{activity}:stream`;
  let seq = 0;
  const cycle = async (shard: number) => {
    const jobId = `job-${++seq}`;
    const answered = new Promise<void>((resolve) => waiting.set(jobId, resolve));
    await ingress.enqueue(shard, { jobId, items: ITEMS, data: jobData('api-x'), allOrNothing: true });
    const read = (await reader.xreadgroup(
      'GROUP',
      'workers',
      'w1',
      'COUNT',
      1,
      'BLOCK',
      500,
      'STREAMS',
      names.jobs(shard),
      '>',
    )) as [string, [string, string[]][]][];
    const [entryId, fields] = read[0]![1][0]!;
    const job = build.queue.parseEntry(entryId, fields);
    const reply = { jobId, sealedResults: `kfsealed1:${randomBytes(3200).toString('base64')}` };
    const run = { processedOn: Date.now(), finishedOn: Date.now(), attempts: 1 };
    if (!build.replies.replyChannel) {
      // Before the completion script published: the append awaited, then the completion and the PUBLISH.
      await appender.xadd(activityKey, 'MAXLEN', '~', 200_000, '*', 'rows', activityRows());
      await Promise.all([
        worker.complete(shard, job, build.queue.finishedRecord(job, run, reply), 65),
        build.replies.publishReply(commands, names, 'api-x', reply),
      ]);
    } else {
      await worker.complete(shard, job, {
        record: build.queue.finishedRecord(job, run, reply),
        keepSeconds: 65,
        channel: build.replies.replyChannel(commands, names, 'api-x', shard),
        append: { key: activityKey, field: 'rows', value: activityRows(), maxLength: 200_000 },
      });
    }
    await answered;
    waiting.delete(jobId);
  };
  const before = await redisCpuUs(admin);
  let left = jobs;
  await Promise.all(
    Array.from({ length: SHARDS }, async (_, shard) => {
      while (left-- > 0) await cycle(shard);
    }),
  );
  const after = await redisCpuUs(admin);
  for (const c of [api, commands, reader, appender, subscriber]) c.disconnect();
  const keys = await admin.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await admin.del(...keys.slice(i, i + 500));
  return (after - before) / jobs;
}

async function main() {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL names the Redis to measure');
  const argv = process.argv.slice(2);
  let jobs = 3000;
  let rounds = 6;
  const specs: [string, string][] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value = ''] = [argv[i], argv[i + 1]];
    if (flag === '--jobs') jobs = Number(value);
    else if (flag === '--rounds') rounds = Number(value);
    else if (flag === '--variant')
      specs.push([value.slice(0, value.indexOf('=')), value.slice(value.indexOf('=') + 1)]);
    else throw new Error(`unknown option ${flag}`);
  }
  if (specs.length === 0) specs.push(['this', path.join(HERE)]);
  const builds = await Promise.all(specs.map(([name, dist]) => load(name, path.resolve(dist))));
  const admin = new Redis(url);
  const results = new Map<string, number[]>(builds.map((b) => [b.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
      const us = await round(b, url, admin, jobs);
      results.get(b.name)!.push(Math.round(us));
      console.log(`[queue-cycle] ${b.name} round ${r + 1}: ${us.toFixed(1)} µs of Redis CPU per job`);
    }
  }
  for (const [name, list] of results)
    console.log(`[queue-cycle] ${name}: median ${median(list)} µs per job (${list.join(', ')})`);
  admin.disconnect();
}

main().catch((err: unknown) => {
  console.error(`queue-cycle failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
