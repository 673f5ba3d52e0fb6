#!/usr/bin/env node
// The suite's Redis Cluster in cluster mode (scripts/test.sh --redis-cluster): 3 masters and 3 replicas of
// Debian's redis-server that outlive this command, their data under --data-dir.
//   node dist/test/support/redis-cluster-cli.js start --data-dir D   prints KEYFARM_TEST_REDIS_CLUSTER_NODES=…
//                                                                   and KEYFARM_TEST_REDIS_PASSWORD=…
//   node dist/test/support/redis-cluster-cli.js stop  --data-dir D
// The password (generated, recorded for the secret scan) is on stdout: eval it, keep it out of logs.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalRedisCluster } from './redis-cluster.js';

const USAGE = 'usage: redis-cluster-cli <start|stop> --data-dir DIR';

function pidFiles(dataDir: string): string[] {
  if (!existsSync(dataDir)) return [];
  return readdirSync(dataDir)
    .filter((d) => d.startsWith('redis-cluster-'))
    .map((d) => path.join(dataDir, d, 'redis.pid'))
    .filter((f) => existsSync(f));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stop(dataDir: string): Promise<void> {
  const pids = pidFiles(dataDir).map((f) => Number(readFileSync(f, 'utf8').trim()));
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const f of pidFiles(dataDir)) rmSync(f);
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { 'data-dir': { type: 'string' } },
  });
  const dataDir = values['data-dir'];
  if (positionals.length !== 1 || !dataDir) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (positionals[0] === 'stop') {
    await stop(dataDir);
    return 0;
  }
  if (positionals[0] !== 'start') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  await stop(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
  const cluster = await startLocalRedisCluster({ root: path.resolve(dataDir), detached: true });
  cluster.disconnect();
  process.stdout.write(
    `KEYFARM_TEST_REDIS_CLUSTER_NODES=${cluster.env.REDIS_CLUSTER_NODES}\nKEYFARM_TEST_REDIS_PASSWORD=${cluster.password}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`redis-cluster-cli: ${err.message}\n`);
    process.exit(1);
  },
);
