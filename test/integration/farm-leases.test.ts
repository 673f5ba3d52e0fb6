// Shard ownership across worker members on the real Redis: three members divide the shards without
// overlap; one is killed with SIGKILL mid-work and its shards and in-hand jobs move to the others.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createRedis } from '../../shared/redis.js';
import { RpcClient } from '../../shared/farm/rpc-client.js';
import { startWorkers, type Workers } from '../../workers/index.js';
import { shardOwners } from '../../workers/shard-leases.js';
import {
  FakeCrypto,
  FakeKeyLoader,
  REDIS_TARGET,
  deleteByPrefix,
  noActivity,
  quietLogger,
  signItem,
  testSealer,
  uniquePrefix,
  waitFor,
  workersConfig,
} from './farm-fixtures.js';
import { suiteShardNames } from '../support/env.js';

const SHARDS = 8;
const TTL = 1000;
const logger = quietLogger();
const prefix = uniquePrefix();
const names = suiteShardNames(prefix, SHARDS);
const redis = createRedis(REDIS_TARGET);
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await redis.quit();
  await deleteByPrefix(prefix);
});

async function member(id: string): Promise<Workers> {
  const w = await startWorkers({
    config: workersConfig(prefix, { SHARD_COUNT: SHARDS, LEASE_TTL_MS: TTL }),
    logger,
    keyLoader: new FakeKeyLoader(),
    crypto: new FakeCrypto(),
    activity: noActivity,
    sealer: testSealer,
    redisUrl: REDIS_TARGET,
    memberId: id,
  });
  closers.push(() => w.stop());
  return w;
}

interface ChildMember {
  proc: ChildProcess;
  owned: number[];
  jobsStarted: number;
}

async function childMember(id: string, cryptoDelayMs: number): Promise<ChildMember> {
  const script = fileURLToPath(new URL('./farm-worker-child.js', import.meta.url));
  const proc = spawn(process.execPath, [script], {
    env: {
      ...process.env,
      KEY_PREFIX: prefix,
      SHARD_COUNT: String(SHARDS),
      MEMBER_ID: id,
      CRYPTO_DELAY_MS: String(cryptoDelayMs),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  closers.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }
  });
  const child: ChildMember = { proc, owned: [], jobsStarted: 0 };
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { event: string; shards?: number[] };
    if (m.event === 'owned') child.owned = m.shards!;
    if (m.event === 'running') child.jobsStarted++;
  });
  return child;
}

/** Owner of every shard's lease in Redis. */
async function leaseOwners(): Promise<(string | null)[]> {
  return Promise.all(Array.from({ length: SHARDS }, (_, s) => redis.get(names.lease(s))));
}

/** The shards rendezvous hashing gives `member` among `members`: what it owns once the division settles. */
function shareOf(member: string, members: readonly string[]): number[] {
  return Array.from({ length: SHARDS }, (_, s) => s).filter((s) => shardOwners(members, SHARDS)[s] === member);
}

const same = (a: readonly number[], b: readonly number[]) =>
  JSON.stringify([...a].sort((x, y) => x - y)) === JSON.stringify(b);

function assertPartition(owned: Record<string, number[]>): void {
  const all = Object.values(owned)
    .flat()
    .sort((a, b) => a - b);
  assert.deepEqual(
    all,
    Array.from({ length: SHARDS }, (_, i) => i),
    `every shard once: ${JSON.stringify(owned)}`,
  );
}

test('three members divide the shards without overlap; a killed one hands its shards and jobs over', async (t) => {
  const a = await member('member-a');
  const b = await member('member-b');
  const c = await childMember('member-c', 1500);

  // The division settles on the rendezvous shares (the first two members hold everything until the
  // third is seen): each shard owned by exactly one member, matching the leases in Redis.
  const three = ['member-a', 'member-b', 'member-c'];
  await waitFor(
    'the shards to be divided among three',
    async () => {
      const owners = await leaseOwners();
      return (
        same(a.ownedShards(), shareOf('member-a', three)) &&
        same(b.ownedShards(), shareOf('member-b', three)) &&
        same(c.owned, shareOf('member-c', three)) &&
        owners.every((o, s) => o === shardOwners(three, SHARDS)[s])
      );
    },
    15_000,
  );
  assertPartition({ a: a.ownedShards(), b: b.ownedShards(), c: c.owned });
  const owners = await leaseOwners();
  for (const s of a.ownedShards()) assert.equal(owners[s], 'member-a');
  for (const s of b.ownedShards()) assert.equal(owners[s], 'member-b');
  const victimShards = [...c.owned];
  assert.ok(victimShards.length > 0, 'the child member owns shards (rendezvous over 3 members, 8 shards)');

  // Work on every shard; the child's crypto is slow, so it holds jobs when it dies.
  const rpc = new RpcClient({
    redisUrl: REDIS_TARGET,
    names,
    shardCount: SHARDS,
    queueLimit: 4096,
    timeoutMs: 25_000,
    instanceId: 'api-leases',
    logger,
    sealer: testSealer,
  });
  await rpc.start();
  closers.push(() => rpc.close());
  const calls = Array.from({ length: SHARDS * 4 }, (_, i) => rpc.call(i % SHARDS, signItem(`key-${i}`, `m${i}`)));
  await waitFor('the child to hold jobs', () => c.jobsStarted > 0, 10_000);

  const killedAt = Date.now();
  c.proc.kill('SIGKILL');
  await once(c.proc, 'exit');

  // Its shards move to the survivors within about the lease TTL.
  await waitFor(
    'the survivors to take every shard',
    () => a.ownedShards().length + b.ownedShards().length === SHARDS,
    10_000,
  );
  const movedAfter = Date.now() - killedAt;
  assert.ok(movedAfter < TTL * 3, `shards moved ${movedAfter} ms after the kill (TTL ${TTL} ms)`);
  assertPartition({ a: a.ownedShards(), b: b.ownedShards() });
  for (const s of victimShards) assert.ok([...a.ownedShards(), ...b.ownedShards()].includes(s));
  assert.deepEqual(
    (await leaseOwners()).filter((o) => o === 'member-c'),
    [],
  );

  // And the jobs it had in hand run again: every call is answered.
  const results = await Promise.all(calls);
  t.diagnostic(
    `shards moved ${movedAfter} ms after SIGKILL; all ${calls.length} calls answered ${Date.now() - killedAt} ms after it`,
  );
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], 'every call answered');
  assert.deepEqual(
    results.map((r) => r.ok && (r.result as { content: string }).content),
    calls.map((_, i) => `m${i}`),
  );
});

test('a clean stop hands shards over at once, and a member that rejoins gets the same share back', async () => {
  const d = await member('member-d');
  // member-c was killed in the test above; once its membership has expired the live ones are these.
  const dShards = shareOf('member-d', ['member-a', 'member-b', 'member-d']);
  assert.ok(dShards.length > 0, 'member-d has a share (rendezvous over 3 members, 8 shards)');
  await waitFor('member-d to get its share', () => same(d.ownedShards(), dShards), 10_000);
  // stop() hands the leases back as its last step; a busy machine may take a while to get there.
  await d.stop();
  const stoppedAt = Date.now();
  await waitFor(
    'the others to take member-d shards',
    async () => (await leaseOwners()).every((o) => o !== null && o !== 'member-d'),
    5_000,
  );
  assert.ok(Date.now() - stoppedAt < TTL, 'released leases are taken at the next round, not after the TTL');

  const again = await member('member-d');
  await waitFor('member-d to get its shards back', () => same(again.ownedShards(), dShards), 10_000);
  assert.deepEqual(
    (await leaseOwners()).map((o, s) => (dShards.includes(s) ? o === 'member-d' : o !== 'member-d')),
    Array(SHARDS).fill(true),
  );
});
