// A worker member in its own process, for the test that kills one with SIGKILL. Settings from env;
// prints one JSON line per lease change and per job it starts.
import { startWorkers } from '../../workers/index.js';
import { FakeCrypto, FakeKeyLoader, REDIS_TARGET, quietLogger, testSealer, workersConfig } from './farm-fixtures.js';

const env = process.env;
const crypto = new FakeCrypto(Number(env.CRYPTO_DELAY_MS ?? 0));
const originalRun = crypto.run.bind(crypto);
crypto.run = (ops) => {
  process.stdout.write(`${JSON.stringify({ event: 'running', ops: ops.length })}\n`);
  return originalRun(ops);
};

const workers = await startWorkers({
  config: workersConfig(env.KEY_PREFIX!, { SHARD_COUNT: Number(env.SHARD_COUNT ?? 8) }),
  logger: quietLogger(),
  keyLoader: new FakeKeyLoader(),
  crypto,
  activity: { record: () => {} },
  sealer: testSealer,
  redisUrl: REDIS_TARGET,
  memberId: env.MEMBER_ID,
});
const report = () => process.stdout.write(`${JSON.stringify({ event: 'owned', shards: workers.ownedShards() })}\n`);
workers.leases.on('acquired', report);
workers.leases.on('released', report);
report();
