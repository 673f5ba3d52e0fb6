// Command-line options of `npm run bench -- [--runs N] ...`, with the defaults the brief asks for.
export interface BenchOptions {
  /** Load runs per scenario; medians are reported over these. */
  runs: number;
  users: number;
  connections: number;
  durationS: number;
  warmupS: number;
  /** wrk threads: one keeps the load generator's share of the two cores small. */
  wrkThreads: number;
  /** Users in the cold-key sample, measured one after another. */
  coldUsers: number;
  /** Signed responses checked with verifyEvent after each scenario's runs. */
  verifySample: number;
  rawSchnorrMs: number;
  /** Parallel registrations while seeding (argon2id runs on libuv's pool). */
  seedConcurrency: number;
  scenarios: ScenarioName[];
  /** CRYPTO_THREADS of each workers process in the split scenario. */
  splitCryptoThreads: number;
  splitWorkers: number;
  /** Longest wait, before each timed phase, for other processes to leave the cores alone (0: no wait). */
  quietWaitS: number;
  /** Concurrent NIP-46 clients (one user and bunker each) in the nip46 scenario. */
  nip46Clients: number;
  /** CRYPTO_BACKEND of the farm processes (and the crypto ceiling's). */
  cryptoBackend: 'auto' | 'native' | 'wasm';
  /** Requests/s offered in the open-loop latency run of all-in-one (0: none). */
  openLoopRate: number;
  openLoopConnections: number;
  /** Connections of the get_public_key runs of all-in-one (0: none). */
  getPublicKeyConnections: number;
  /** Seconds of an extra load run with every Redis command slow-logged: what clients send, by command and script (0: none). */
  redisMonitorS: number;
}

/** Deployment shapes loaded with sign_event over HTTP. */
export type HttpScenarioName = 'all-in-one' | 'split' | 'cluster';
/**
 * nip46: the all-in-one farm answering bunker round trips through a local relay. cluster: all-in-one on a
 * local Redis Cluster (3 masters, 3 replicas), Redis's cost per request read on each master.
 */
export type ScenarioName = HttpScenarioName | 'nip46';
const SCENARIOS: readonly ScenarioName[] = ['all-in-one', 'split', 'nip46', 'cluster'];

const DEFAULTS: BenchOptions = {
  runs: 3,
  users: 1000,
  connections: 64,
  durationS: 20,
  warmupS: 5,
  wrkThreads: 1,
  coldUsers: 50,
  verifySample: 50,
  rawSchnorrMs: 5000,
  seedConcurrency: 4,
  scenarios: [...SCENARIOS],
  splitCryptoThreads: 1,
  splitWorkers: 2,
  quietWaitS: 90,
  nip46Clients: 32,
  cryptoBackend: 'auto',
  openLoopRate: 2000,
  openLoopConnections: 100,
  getPublicKeyConnections: 50,
  redisMonitorS: 0,
};

const NUMERIC: Record<string, keyof BenchOptions> = {
  '--runs': 'runs',
  '--users': 'users',
  '--connections': 'connections',
  '--duration': 'durationS',
  '--warmup': 'warmupS',
  '--wrk-threads': 'wrkThreads',
  '--cold-users': 'coldUsers',
  '--verify-sample': 'verifySample',
  '--raw-ms': 'rawSchnorrMs',
  '--seed-concurrency': 'seedConcurrency',
  '--split-crypto-threads': 'splitCryptoThreads',
  '--split-workers': 'splitWorkers',
  '--quiet-wait': 'quietWaitS',
  '--nip46-clients': 'nip46Clients',
  '--open-loop-rate': 'openLoopRate',
  '--open-loop-connections': 'openLoopConnections',
  '--get-public-key-connections': 'getPublicKeyConnections',
  '--redis-monitor': 'redisMonitorS',
};

export const USAGE = `usage: npm run bench -- [options]
  --runs N                 load runs per scenario, medians reported (default ${DEFAULTS.runs})
  --users N                users with an access token (default ${DEFAULTS.users})
  --connections N          concurrent connections (default ${DEFAULTS.connections})
  --duration S             seconds per load run (default ${DEFAULTS.durationS})
  --warmup S               seconds of warm-up load (default ${DEFAULTS.warmupS})
  --scenario NAME          all-in-one, split, nip46 or cluster; repeatable (default all four)
  --wrk-threads N          wrk threads (default ${DEFAULTS.wrkThreads})
  --cold-users N           users in the cold-key sample (default ${DEFAULTS.coldUsers})
  --verify-sample N        responses verified per scenario (default ${DEFAULTS.verifySample})
  --raw-ms MS              raw Schnorr measurement length (default ${DEFAULTS.rawSchnorrMs})
  --seed-concurrency N     parallel registrations while seeding (default ${DEFAULTS.seedConcurrency})
  --split-workers N        workers processes in the split scenario (default ${DEFAULTS.splitWorkers})
  --split-crypto-threads N CRYPTO_THREADS per split workers process (default ${DEFAULTS.splitCryptoThreads})
  --quiet-wait S           before each timed phase, wait up to S s for other processes to go idle (default ${DEFAULTS.quietWaitS}; 0 = no wait)
  --nip46-clients N        concurrent bunker clients in the nip46 scenario (default ${DEFAULTS.nip46Clients})
  --crypto-backend NAME    CRYPTO_BACKEND of the farm: auto, native or wasm (default ${DEFAULTS.cryptoBackend})
  --open-loop-rate N       all-in-one: requests/s offered at a constant rate for the p99 under steady load (default ${DEFAULTS.openLoopRate}; 0 = skip)
  --open-loop-connections N  connections carrying that rate (default ${DEFAULTS.openLoopConnections})
  --get-public-key-connections N  all-in-one: get_public_key runs at this many connections (default ${DEFAULTS.getPublicKeyConnections}; 0 = skip)
  --redis-monitor S        after the runs, S s more load with every Redis command slow-logged: commands sent per request, by command and script (default 0 = none)`;

export class UsageError extends Error {}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const opts: BenchOptions = { ...DEFAULTS };
  const scenarios: ScenarioName[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (flag === '--scenario') {
      const name = SCENARIOS.find((n) => n === value);
      if (name === undefined) throw new UsageError(`--scenario must be one of ${SCENARIOS.join(', ')}`);
      scenarios.push(name);
      i++;
      continue;
    }
    if (flag === '--crypto-backend') {
      if (value !== 'auto' && value !== 'native' && value !== 'wasm')
        throw new UsageError('--crypto-backend must be auto, native or wasm');
      opts.cryptoBackend = value;
      i++;
      continue;
    }
    const key = NUMERIC[flag];
    if (key === undefined) throw new UsageError(`unknown option ${flag}`);
    const n = Number(value);
    const min = ['quietWaitS', 'openLoopRate', 'getPublicKeyConnections', 'redisMonitorS'].includes(key) ? 0 : 1;
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs an integer of at least ${min}`);
    (opts as unknown as Record<string, number>)[key] = n;
    i++;
  }
  if (scenarios.length > 0) opts.scenarios = scenarios;
  if (opts.coldUsers > opts.users) throw new UsageError('--cold-users cannot exceed --users');
  return opts;
}
