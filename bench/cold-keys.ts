// `node dist/bench/cold-keys.js`: the cold-key sample alone, repeated. Seeds users once, then for each
// round starts a fresh all-in-one farm (an empty key cache), signs for a few users to compile the code
// paths, and times each cohort user's first sign_event (cold key) and second (warm), as the full bench
// does (bench/sign-probe.ts). Reports client-side percentiles per round and the farm's own view from its
// metrics: the cold key load inside the worker, the KeyManager unwrap, and the api's answer time.
import path from 'node:path';
import { startBenchServices, type BenchServices } from './bench-services.js';
import { PROJECT_ROOT, startFarmProcess, type FarmProcess } from './farm-process.js';
import { fetchMetrics, sampleValue, type Sample } from './farm-metrics.js';
import { measureColdKeys } from './sign-probe.js';
import { seedUsers, type BenchUser } from './seed-users.js';
import { round } from './stats.js';
import { loadavg } from 'node:os';

const DATA_DIR = path.join(PROJECT_ROOT, '.data', 'bench-cold');
const LOG_DIR = path.join(DATA_DIR, 'logs');
const log = (m: string) => console.log(`[cold] ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Variant {
  name: string;
  env: Record<string, string>;
}

interface Options {
  rounds: number;
  cohort: number;
  jit: number;
  /** Each round runs every variant in turn (interleaved), each on a fresh farm. */
  variants: Variant[];
  /** Skip the ping before the cold request: the api's token lookup is cold too. */
  noPing: boolean;
}

/** `--variant NAME:KEY=VALUE,KEY=VALUE` (repeatable; none: one variant with the defaults). */
function parseVariant(spec: string): Variant {
  const [name, pairs = ''] = spec.split(':', 2) as [string, string?];
  const env: Record<string, string> = {};
  for (const pair of pairs.split(',').filter(Boolean)) {
    const at = pair.indexOf('=');
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return { name, env };
}

function parse(argv: string[]): Options {
  const o: Options = { rounds: 3, cohort: 50, jit: 20, variants: [], noPing: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--no-ping') {
      o.noPing = true;
      continue;
    }
    i++;
    if (flag === '--rounds') o.rounds = Number(value);
    else if (flag === '--cohort') o.cohort = Number(value);
    else if (flag === '--jit') o.jit = Number(value);
    else if (flag === '--variant') o.variants.push(parseVariant(value));
    else throw new Error(`unknown option ${flag}`);
  }
  if (o.variants.length === 0) o.variants.push({ name: 'default', env: {} });
  return o;
}

const delta = (a: Sample[], b: Sample[], name: string, labels: Record<string, string> = {}) =>
  (sampleValue(b, name, labels) ?? 0) - (sampleValue(a, name, labels) ?? 0);

async function main(): Promise<void> {
  const opts = parse(process.argv.slice(2));
  let services: BenchServices | undefined;
  const live: FarmProcess[] = [];
  try {
    services = await startBenchServices(DATA_DIR);
    const env: Record<string, string> = {
      DATABASE_URL: services.databaseUrl,
      REDIS_URL: services.redisUrl,
      KEY_PREFIX: 'cold',
      DATA_DIR,
      MASTER_KEY_PATH: path.join(DATA_DIR, 'master.key'),
      LOG_LEVEL: 'info',
      RATE_LIMIT_ALLOWLIST: '127.0.0.0/8,::1/128',
    };
    const migrate = await startFarmProcess({ name: 'migrate', role: 'migrate', env, logDir: LOG_DIR });
    await migrate.stop();
    const seeder = await startFarmProcess({ name: 'seed', role: 'api', env, logDir: LOG_DIR });
    const users: BenchUser[] = await seedUsers(seeder.url!, opts.jit + opts.cohort, 4);
    await seeder.stop();
    log(`seeded ${users.length} users`);
    for (let r = 1; r <= opts.rounds; r++) {
      for (const v of opts.variants) {
        const farm = await startFarmProcess({
          name: `farm-${r}-${v.name}`,
          role: 'all',
          env: { ...env, ...v.env },
          logDir: LOG_DIR,
        });
        live.push(farm);
        await sleep(6000);
        const before = await fetchMetrics(farm.url!);
        const load = loadavg()[0]!.toFixed(2);
        const result = await measureColdKeys(farm.url!, users.slice(opts.jit), users.slice(0, opts.jit), {
          ping: !opts.noPing,
        });
        const after = await fetchMetrics(farm.url!);
        const d = (name: string, labels: Record<string, string> = {}) => delta(before, after, name, labels);
        const loads = d('keyfarm_cold_key_load_seconds_count');
        const loadMs = (d('keyfarm_cold_key_load_seconds_sum') / loads) * 1000;
        const misses = d('keyfarm_cache_misses_total', { cache: 'key' });
        const prefetched = d('keyfarm_key_prefetch_total', { outcome: 'loaded' });
        log(
          `round ${r} ${v.name} (load avg ${load}): cold p50 ${result.coldMs.p50} p95 ${result.coldMs.p95} p99 ${result.coldMs.p99} max ${result.coldMs.max}; warm p50 ${result.warmMs.p50} p95 ${result.warmMs.p95} p99 ${result.warmMs.p99}; valid ${result.check.valid}/${result.check.checked}; key loads ${loads} (mean ${round(loadMs, 3)} ms), request cache misses ${misses}, prefetched ${prefetched}`,
        );
        console.log(
          JSON.stringify({
            round: r,
            variant: v.name,
            load,
            cold: result.coldMs,
            warm: result.warmMs,
            loads,
            loadMs,
            misses,
          }),
        );
        await farm.stop();
        live.pop();
      }
    }
  } finally {
    for (const p of live) await p.stop().catch(() => undefined);
    await services?.stop().catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
