// `npm run fuzz`: the fuzz suite's property run at benchmark size (FUZZ_RUNS, 100,000 by default) against an
// in-process farm on embedded PostgreSQL and Redis of its own. Prints a table per route and writes
// bench/results/fuzz-latest.json and a history line (bench/history.ts); exits 1 on any 5xx, bad answer or crash, or if
// the farm cannot sign a real event afterwards.
import path from 'node:path';
import pino from 'pino';
import { verifyEvent } from 'nostr-tools/pure';
import { startRoles } from '../bin/roles.js';
import { prepareRuntime } from '../bin/runtime.js';
import { migrate } from '../database/migrate.js';
import { parseConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { authorizeApp, registerUser, rpc } from '../test/support/client.js';
import { baseTestEnv, createTestDatabase } from '../test/support/env.js';
import { THIRD_PARTY_PREFIX, routesWithoutSchema, watchRoutes } from '../test/support/fuzz/route-table.js';
import { formatReport, runFuzz } from '../test/support/fuzz/runner.js';
import { startBenchServices } from './bench-services.js';
import { PROJECT_ROOT } from './farm-process.js';
import { fuzzHistoryLine, recordFileName, recordRun } from './history.js';
import { machineInfo } from './machine-info.js';

const DATA_DIR = path.join(PROJECT_ROOT, '.data', 'fuzz');
const RESULTS_DIR = path.join(PROJECT_ROOT, 'bench', 'results');
const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 8);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const ORIGIN = 'https://app.example';

const log = (message: string) => console.log(`[fuzz] ${message}`);

async function main(): Promise<number> {
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('FUZZ_RUNS must be a positive integer');
  log('starting embedded PostgreSQL and Redis');
  const services = await startBenchServices(DATA_DIR);
  process.env.DATABASE_URL = services.databaseUrl;
  process.env.REDIS_URL = services.redisUrl;
  const database = await createTestDatabase();
  const logFile = path.join(DATA_DIR, 'farm.log');
  const logger = createLogger({
    level: process.env.LOG_LEVEL ?? 'warn',
    role: 'fuzz',
    destination: pino.destination({ dest: logFile, mkdir: true, sync: false }),
  });
  const config = parseConfig({
    ...baseTestEnv({ LOG_LEVEL: 'warn' }),
    DATABASE_URL: database.url,
    PORT: '0',
    ALLOWED_ORIGINS: ORIGIN,
  });

  const watch = watchRoutes();
  const rt = await prepareRuntime('all', config, logger);
  await migrate(rt.db, rt.logger);
  const running = await startRoles(rt, { api: true, workers: true });
  watch.stop();
  try {
    const app = watch.app('/api/nostr');
    const routes = watch.routes(app);
    const unchecked = routesWithoutSchema(routes);
    if (unchecked.length > 0) throw new Error(`routes reading input without a schema: ${unchecked.join(', ')}`);
    const url = running.api!.url;
    const user = await registerUser(url);
    const access = (await authorizeApp(url, user.session, 'full')).access_token;
    // Bull Board's routes share one password check: a few of them, not a share each.
    const board = routes.filter((r) => r.url.startsWith(THIRD_PARTY_PREFIX));
    const fuzzed = [
      ...routes.filter((r) => !r.url.startsWith(THIRD_PARTY_PREFIX)),
      ...board.filter((_, i) => i % 8 === 0),
    ];
    log(
      `${RUNS} inputs over ${fuzzed.length} routes, ${CONCURRENCY} routes at a time; farm log: ${path.relative(PROJECT_ROOT, logFile)}`,
    );

    const report = await runFuzz(
      { app, url, access, allowedOrigins: [ORIGIN] },
      { routes: fuzzed, runs: RUNS, seed: SEED, stopOnProblem: false, concurrency: CONCURRENCY },
    );

    const signed = await rpc(url, access, 'sign_event', [
      { kind: 1, content: 'after the fuzz', tags: [], created_at: Math.floor(Date.now() / 1000) },
    ]);
    const signsAfterwards = signed.status === 200 && verifyEvent(signed.body.result);
    console.log(formatReport(report));
    for (const problem of report.problems) console.log(`problem: ${problem}`);
    for (const crash of report.crashes.slice(0, 10)) console.log(`crash: ${crash}`);
    log(`a real sign_event afterwards: ${signsAfterwards ? 'signed and verified' : `FAILED (${signed.status})`}`);

    const record = {
      kind: 'fuzz',
      at: new Date().toISOString(),
      machine: machineInfo(),
      concurrency: CONCURRENCY,
      signsAfterwards,
      ...report,
    };
    const file = recordRun(RESULTS_DIR, record, recordFileName(record.at, 'fuzz-'), 'fuzz-latest.json', [
      fuzzHistoryLine(record),
    ]);
    log(
      `wrote ${path.relative(PROJECT_ROOT, file)}, bench/results/fuzz-latest.json and a line in bench/results/history.jsonl`,
    );
    return report.fiveXx === 0 && report.problems.length === 0 && report.crashes.length === 0 && signsAfterwards
      ? 0
      : 1;
  } finally {
    await running.stop();
    await rt.db.end();
    await database.drop().catch(() => undefined);
    await services.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`fuzz: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
