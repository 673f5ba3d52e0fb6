// A PostgreSQL and a Redis of a test file's own (the embedded ones, data under .data/test/<random>), so the
// test can stop, crash and restart them without touching the servers the rest of the suite shares.
// Restarts keep the port and the data: PostgreSQL from its cluster, Redis from its append-only file.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { removeEmbeddedServicesData, startEmbeddedServices } from '../../shared/embedded-services.js';
import { isProcessRunning, readPidFile, waitFor } from '../../shared/embedded/commands.js';
import { startPostgres, stopPostgres } from '../../shared/embedded/postgres.js';
import { redisPing, startRedis } from '../../shared/embedded/redis.js';
import { testDataDir } from './env.js';
import { recordSecret, testLogger } from './logs.js';

export interface OwnServices {
  databaseUrl: string;
  redisUrl: string;
  /** `pg_ctl stop -m fast`: connections are closed, new ones refused. */
  stopPostgres(): Promise<void>;
  startPostgres(): Promise<void>;
  /**
   * SIGSTOP to the postmaster and every backend: connections stay open and nothing answers, as in a
   * frozen VM or a stalled disk. thawPostgres() (SIGCONT) must follow, in a finally.
   */
  freezePostgres(): void;
  thawPostgres(): void;
  /** SIGKILL, as in a crash: nothing is flushed beyond what Redis already wrote to its append-only file. */
  killRedis(): Promise<void>;
  startRedis(): Promise<void>;
  /** Stops both and deletes their data. */
  remove(): Promise<void>;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** The generated password a URL of the embedded servers carries, recorded for the secret scan. */
function recordedPassword(url: string): string {
  return recordSecret(decodeURIComponent(new URL(url).password));
}

/** The postmaster (from its data directory's postmaster.pid) and its children. */
function postgresProcesses(dataDir: string): number[] {
  const postmaster = readPidFile(path.join(dataDir, 'postgres', 'data', 'postmaster.pid'));
  if (postmaster === undefined) throw new Error('embedded postgres has no postmaster.pid');
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

export async function startOwnServices(name: string): Promise<OwnServices> {
  const dataDir = testDataDir();
  const logger = testLogger(`${name}-services`);
  // Durable: a crash test must not be helped or hurt by skipped fsyncs.
  const services = await startEmbeddedServices({ dataDir, logger, durable: true });
  const redisPort = portOf(services.redisUrl);
  const redisPassword = recordedPassword(services.redisUrl);
  recordedPassword(services.databaseUrl);
  const pgPort = portOf(services.databaseUrl);
  let frozen: number[] = [];
  const thaw = () => {
    for (const pid of frozen.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* exited meanwhile */
      }
    }
  };
  const same = (url: string, port: number, what: string) => {
    if (portOf(url) !== port) throw new Error(`${what} came back on port ${portOf(url)}, not ${port}`);
  };
  return {
    databaseUrl: services.databaseUrl,
    redisUrl: services.redisUrl,
    async stopPostgres() {
      await stopPostgres(dataDir, logger);
    },
    async startPostgres() {
      same((await startPostgres({ dataDir, logger, durable: true })).url, pgPort, 'PostgreSQL');
    },
    freezePostgres() {
      frozen = postgresProcesses(dataDir);
      // Never left frozen, whatever ends the test file.
      process.once('exit', thaw);
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    },
    thawPostgres: thaw,
    async killRedis() {
      const pid = readPidFile(path.join(dataDir, 'redis', 'redis.pid'));
      if (pid === undefined) throw new Error('embedded redis has no pid file');
      process.kill(pid, 'SIGKILL');
      const gone = await waitFor(
        async () => !isProcessRunning(pid, 'redis-server') && !(await redisPing(redisPort, 200, redisPassword)),
        10_000,
        50,
      );
      if (!gone) throw new Error('redis did not die');
    },
    async startRedis() {
      same((await startRedis({ dataDir, logger })).url, redisPort, 'Redis');
    },
    async remove() {
      await removeEmbeddedServicesData(dataDir, logger);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
