// A real local Redis Cluster for tests: 3 masters and 3 replicas of Debian's redis-server, each with its
// data, config and log under a fresh test data dir, all behind one generated password (recorded for the
// secret scan). Short node timeout, so a killed master's replica takes over in about two seconds.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { findRedisServer } from '../../shared/embedded/binaries.js';
import { freePort, testDataDir } from './env.js';
import { recordSecret } from './logs.js';

const run = promisify(execFile);

export interface ClusterNodeProcess {
  port: number;
  dir: string;
  child?: ChildProcess;
}

export interface LocalRedisCluster {
  password: string;
  nodes: ClusterNodeProcess[];
  /** Settings naming it, for a farm's environment. */
  env: { REDIS_CLUSTER_NODES: string; REDIS_PASSWORD: string };
  /** Ports of the current masters (CLUSTER NODES as one live node sees it). */
  masters(): Promise<number[]>;
  /** The port of the master serving `key`'s slot. */
  masterOf(key: string): Promise<number>;
  /** kill -9 one node. */
  kill(port: number): void;
  /** Starts a killed node again (it rejoins, as a replica if it was failed over). */
  restart(port: number): Promise<void>;
  /** Resolves once every live node says cluster_state:ok and every slot has a live master. */
  healthy(timeoutMs?: number): Promise<void>;
  /** A plain connection to one node (for CLUSTER and INFO commands). */
  node(port: number): Redis;
  /** Closes this process's connections to the nodes, leaving them running. */
  disconnect(): void;
  stop(): Promise<void>;
}

/** Node timeout: how long a master is unreachable before its replica is promoted. */
const NODE_TIMEOUT_MS = 1000;

function writeNodeConfig(node: ClusterNodePorts, dir: string, password: string): string {
  const conf = path.join(dir, 'redis.conf');
  const lines = [
    'bind 127.0.0.1',
    `port ${node.port}`,
    `cluster-port ${node.busPort}`,
    'cluster-enabled yes',
    `cluster-config-file ${path.join(dir, 'nodes.conf')}`,
    `cluster-node-timeout ${NODE_TIMEOUT_MS}`,
    // A replica takes over however long its master was gone (tests kill masters at will).
    'cluster-replica-validity-factor 0',
    'cluster-allow-reads-when-down no',
    `requirepass ${password}`,
    `masterauth ${password}`,
    `dir ${dir}`,
    'appendonly yes',
    'appendfsync everysec',
    'save ""',
    'daemonize no',
    `logfile ${path.join(dir, 'redis.log')}`,
    'maxmemory-policy noeviction',
  ];
  writeFileSync(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
  return conf;
}

interface ClusterNodePorts {
  port: number;
  busPort: number;
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface LocalRedisClusterOptions {
  /** Where the nodes keep their data (default: a fresh dir under .data/test). */
  root?: string;
  /** The nodes outlive this process (the suite's cluster, started once by scripts/test.sh). */
  detached?: boolean;
}

export async function startLocalRedisCluster(opts: LocalRedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const binary = findRedisServer();
  const password = recordSecret(randomBytes(24).toString('hex'));
  const root = opts.root ?? testDataDir();
  const ports = await distinctFreePorts(12);
  const nodes: (ClusterNodeProcess & ClusterNodePorts & { conf: string })[] = [];
  for (let i = 0; i < 6; i++) {
    const dir = path.join(root, `redis-cluster-${i}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const p = { port: ports[i]!, busPort: ports[i + 6]! };
    nodes.push({ ...p, dir, conf: writeNodeConfig(p, dir, password) });
  }
  const connections = new Map<number, Redis>();
  const node = (port: number): Redis => {
    let c = connections.get(port);
    if (!c) {
      c = new Redis({
        host: '127.0.0.1',
        port,
        password,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: true,
        retryStrategy: () => 200,
      });
      c.on('error', () => undefined);
      connections.set(port, c);
    }
    return c;
  };
  const startNode = async (n: (typeof nodes)[number]) => {
    n.child = spawn(binary, [n.conf], { stdio: 'ignore', detached: opts.detached ?? false });
    n.child.on('error', () => undefined);
    if (opts.detached) {
      n.child.unref();
      writeFileSync(path.join(n.dir, 'redis.pid'), `${n.child.pid}\n`);
    }
    await until(async () => (await node(n.port).ping()) === 'PONG', 10_000, `node ${n.port} did not answer`);
  };
  await Promise.all(nodes.map(startNode));

  const clusterInfo = async (port: number) => String(await node(port).call('CLUSTER', 'INFO'));
  const clusterNodes = async (port: number) =>
    String(await node(port).call('CLUSTER', 'NODES'))
      .trim()
      .split('\n')
      .map((line) => line.split(' '));
  const live = () => nodes.filter((n) => n.child && n.child.exitCode === null && n.child.signalCode === null);
  const healthy = async (timeoutMs = 20_000) => {
    await until(
      async () => {
        for (const n of live()) {
          if (!(await clusterInfo(n.port)).includes('cluster_state:ok')) return false;
          const lines = await clusterNodes(n.port);
          const masters = lines.filter((f) => f[2]!.includes('master') && !f[2]!.includes('fail') && f.length > 8);
          if (masters.length !== 3) return false;
        }
        return true;
      },
      timeoutMs,
      'not healthy',
    );
  };

  const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
  // The password goes by environment, not on a command line other users can read.
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], {
    env: { ...process.env, REDISCLI_AUTH: password },
  });
  await healthy();

  const masters = async () => {
    const [first] = live();
    const lines = await clusterNodes(first!.port);
    return lines
      .filter((f) => f[2]!.includes('master') && !f[2]!.includes('fail') && f.length > 8)
      .map((f) => Number(f[1]!.split(/[:@]/)[1]));
  };

  return {
    password,
    nodes,
    env: { REDIS_CLUSTER_NODES: addresses.slice(0, 3).join(','), REDIS_PASSWORD: password },
    masters,
    async masterOf(key) {
      const [first] = live();
      const slot = Number(await node(first!.port).call('CLUSTER', 'KEYSLOT', key));
      const lines = await clusterNodes(first!.port);
      for (const f of lines) {
        if (!f[2]!.includes('master') || f[2]!.includes('fail')) continue;
        for (const range of f.slice(8)) {
          const [lo, hi = lo] = range.split('-').map(Number);
          if (slot >= lo! && slot <= hi!) return Number(f[1]!.split(/[:@]/)[1]);
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    kill(port) {
      const n = nodes.find((x) => x.port === port);
      n?.child?.kill('SIGKILL');
    },
    async restart(port) {
      const n = nodes.find((x) => x.port === port)!;
      await startNode(n);
    },
    healthy,
    node,
    disconnect() {
      for (const c of connections.values()) c.disconnect();
    },
    async stop() {
      for (const c of connections.values()) c.disconnect();
      await Promise.all(
        nodes.map(
          (n) =>
            new Promise<void>((resolve) => {
              if (!n.child || n.child.exitCode !== null || n.child.signalCode !== null) return resolve();
              n.child.once('exit', () => resolve());
              n.child.kill('SIGTERM');
              setTimeout(() => n.child?.kill('SIGKILL'), 5000).unref();
            }),
        ),
      );
    },
  };
}
