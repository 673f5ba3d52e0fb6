// The embedded PostgreSQL and Redis let no one in without the generated password, as another local account
// would try: Redis without AUTH, PostgreSQL as postgres with no password or a wrong one. The passwords are
// kept private (0600 in a 0700 directory; we run as root, so the modes are what keeps other users out), and
// a data dir left by an older Keyfarm (trust auth, no requirepass) is switched over on its next start,
// whether its servers are still running or not.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  removeEmbeddedServicesData,
  startEmbeddedServices,
  stopEmbeddedServices,
  type EmbeddedServices,
} from '../../shared/embedded-services.js';
import { findPostgres } from '../../shared/embedded/binaries.js';
import { isRoot, runChecked, waitFor } from '../../shared/embedded/commands.js';
import { credentialsDir, passwordFile } from '../../shared/embedded/credentials.js';
import { redisExchange, redisPing } from '../../shared/embedded/redis.js';
import { testDataDir } from '../support/env.js';
import { recordSecret, testLogger } from '../support/logs.js';

const logger = testLogger('embedded-auth');
const dirs: string[] = [];

after(async () => {
  for (const dir of dirs) {
    await removeEmbeddedServicesData(dir, logger);
    rmSync(dir, { recursive: true, force: true });
  }
});

async function start(dataDir: string): Promise<EmbeddedServices> {
  const services = await startEmbeddedServices({ dataDir, logger, durable: false });
  for (const url of [services.databaseUrl, services.redisUrl]) recordSecret(decodeURIComponent(new URL(url).password));
  return services;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function mode(file: string): string {
  return (statSync(file).mode & 0o777).toString(8);
}

/** What a PostgreSQL login as `postgres` with this password (none: undefined) gets: 'in', or the SQLSTATE that refused it. */
async function pgLogin(port: number, password: string | undefined): Promise<string> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'keyfarm',
    password,
    connectionTimeoutMillis: 5000,
  });
  try {
    await client.connect();
    return 'in';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * What the server answers a StartupMessage for `postgres` that brings no credentials: 'ok' (let in at
 * once, as trust does), 'SASL' (the password must be proved), another auth request, or an error.
 */
function pgAnswerToStartup(port: number): Promise<string> {
  const params = Buffer.from('user\0postgres\0database\0keyfarm\0\0');
  const startup = Buffer.alloc(8);
  startup.writeInt32BE(8 + params.length, 0);
  startup.writeInt32BE(196_608, 4); // protocol 3.0
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = Buffer.alloc(0);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer to the startup message')));
    socket.on('error', reject);
    socket.on('connect', () => socket.write(Buffer.concat([startup, params])));
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 9) return;
      socket.destroy();
      if (got[0] !== 0x52) return resolve(`message ${String.fromCharCode(got[0]!)}`);
      const code = got.readInt32BE(5);
      resolve(code === 0 ? 'ok' : code === 10 ? 'SASL' : `auth request ${code}`);
    });
  });
}

/** The reply a Redis client that sends no AUTH gets to a command that would read keys. */
async function redisWithoutPassword(port: number): Promise<string> {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    enableReadyCheck: false,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return String(await redis.keys('*'));
  } catch (err) {
    return (err as Error).message;
  } finally {
    redis.disconnect();
  }
}

async function assertLockedDown(services: EmbeddedServices): Promise<void> {
  const pgPort = portOf(services.databaseUrl);
  const redisPort = portOf(services.redisUrl);
  assert.equal(await pgAnswerToStartup(pgPort), 'SASL', 'postgres let a login in without a password');
  assert.equal(await pgLogin(pgPort, randomBytes(32).toString('base64url')), '28P01', 'postgres took a wrong password');
  assert.equal(await pgLogin(pgPort, decodeURIComponent(new URL(services.databaseUrl).password)), 'in');

  assert.match(await redisWithoutPassword(redisPort), /^NOAUTH/);
  assert.deepEqual(await redisExchange(redisPort, [['GET', 'anything']]), ['-NOAUTH Authentication required.']);
  assert.match((await redisExchange(redisPort, [['AUTH', 'not-the-password']]))?.[0] ?? '', /^-WRONGPASS/);
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    assert.equal(await redis.ping(), 'PONG');
  } finally {
    redis.disconnect();
  }
}

function assertPrivateFiles(dataDir: string, services: EmbeddedServices): void {
  assert.equal(mode(credentialsDir(dataDir)), '700');
  for (const [server, url] of [
    ['postgres', services.databaseUrl],
    ['redis', services.redisUrl],
  ] as const) {
    const file = passwordFile(dataDir, server);
    assert.equal(mode(file), '600', `${file}`);
    assert.equal(
      readFileSync(file, 'utf8').trim(),
      decodeURIComponent(new URL(url).password),
      `${server}'s URL carries the kept password`,
    );
  }
  assert.equal(mode(path.join(dataDir, 'redis')), '700');
  assert.equal(mode(path.join(dataDir, 'redis', 'redis.conf')), '600', 'redis.conf holds requirepass');
}

// ---- a data dir as Keyfarm made it before passwords: trust auth, no password, no requirepass ----

function clusterData(dataDir: string): string {
  return path.join(realpathSync(path.join(dataDir, 'postgres')), 'data');
}

const serverUser = () => (isRoot() ? 'postgres' : undefined);

/** Rewinds a stopped data dir to what the older code left: no credentials, trust on loopback, a role without password, no requirepass. */
async function makeItOld(dataDir: string): Promise<void> {
  await stopEmbeddedServices(dataDir, logger);
  const pgdata = clusterData(dataDir);
  const bins = findPostgres(readFileSync(path.join(pgdata, 'PG_VERSION'), 'utf8').trim());
  await runChecked('postgres --single', bins.postgres, ['--single', '-D', pgdata, 'postgres'], {
    user: serverUser(),
    input: 'ALTER ROLE postgres PASSWORD NULL;\n',
  });
  const hba = path.join(pgdata, 'pg_hba.conf');
  writeFileSync(hba, 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n');
  const conf = path.join(dataDir, 'redis', 'redis.conf');
  writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^requirepass .*\n/m, ''));
  rmSync(credentialsDir(dataDir), { recursive: true, force: true });
}

/** Starts the old servers as the older code did, with no password anywhere. */
async function startOld(dataDir: string, pgPort: number, redisPort: number): Promise<void> {
  const pgdata = clusterData(dataDir);
  const bins = findPostgres(readFileSync(path.join(pgdata, 'PG_VERSION'), 'utf8').trim());
  await runChecked(
    'pg_ctl start',
    bins.pgCtl,
    ['start', '-D', pgdata, '-l', path.join(path.dirname(pgdata), 'server.log'), '-w', '-t', '60', '-s'],
    { user: serverUser() },
  );
  const redis = spawn('redis-server', [path.join(dataDir, 'redis', 'redis.conf')], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
  });
  redis.unref();
  assert.ok(
    await waitFor(() => redisPing(redisPort), 10_000, 50),
    'the old redis did not answer PING without a password',
  );
  assert.equal(await pgAnswerToStartup(pgPort), 'ok', 'the old postgres did not let a login in without a password');
}

async function writeMarkers(services: EmbeddedServices, value: string): Promise<void> {
  const client = new pg.Client({ connectionString: services.databaseUrl });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS markers (value text)');
    await client.query('INSERT INTO markers VALUES ($1)', [value]);
  } finally {
    await client.end();
  }
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await redis.rpush('markers', value);
  } finally {
    redis.disconnect();
  }
}

async function readMarkers(services: EmbeddedServices): Promise<{ pg: string[]; redis: string[] }> {
  const client = new pg.Client({ connectionString: services.databaseUrl });
  await client.connect();
  const rows = await client
    .query<{ value: string }>('SELECT value FROM markers ORDER BY value')
    .finally(() => client.end());
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    return { pg: rows.rows.map((r) => r.value), redis: (await redis.lrange('markers', 0, -1)).sort() };
  } finally {
    redis.disconnect();
  }
}

describe('embedded servers require their generated passwords', () => {
  const dataDir = testDataDir();
  dirs.push(dataDir);
  let services: EmbeddedServices;

  it('refuses PostgreSQL logins without the password or with a wrong one, and Redis commands without AUTH', async () => {
    services = await start(dataDir);
    await assertLockedDown(services);
  });

  it('keeps the passwords in 0600 files of a 0700 directory under the data dir, and reuses them on restart', async () => {
    assertPrivateFiles(dataDir, services);
    const again = await start(dataDir);
    assert.equal(
      again.databaseUrl,
      services.databaseUrl,
      'a second start reuses the running postgres and its password',
    );
    assert.equal(again.redisUrl, services.redisUrl);
    await stopEmbeddedServices(dataDir, logger);
    // Opened up meanwhile (a careless copy, a chmod -R): the next start makes them private again.
    chmodSync(credentialsDir(dataDir), 0o755);
    chmodSync(passwordFile(dataDir, 'redis'), 0o644);
    const restarted = await start(dataDir);
    assertPrivateFiles(dataDir, restarted);
    assert.equal(restarted.databaseUrl, services.databaseUrl, 'a restart keeps the password');
    assert.equal(restarted.redisUrl, services.redisUrl);
    await assertLockedDown(restarted);
  });

  it('makes a new password when its file was deleted, and the old one stops working', async () => {
    rmSync(passwordFile(dataDir, 'postgres'));
    rmSync(passwordFile(dataDir, 'redis'));
    const renewed = await start(dataDir);
    assert.notEqual(renewed.databaseUrl, services.databaseUrl);
    assert.notEqual(renewed.redisUrl, services.redisUrl);
    assert.equal(
      await pgLogin(portOf(services.databaseUrl), decodeURIComponent(new URL(services.databaseUrl).password)),
      '28P01',
    );
    assert.equal(
      await redisPing(portOf(services.redisUrl), 1000, decodeURIComponent(new URL(services.redisUrl).password)),
      false,
    );
    await assertLockedDown(renewed);
    assertPrivateFiles(dataDir, renewed);
    services = renewed;
  });
});

describe('a data dir made before passwords is upgraded in place on its next start', () => {
  const dataDir = testDataDir();
  dirs.push(dataDir);
  let first: EmbeddedServices;

  it('while its old servers still run: they get the password and SCRAM, the data stays', async () => {
    first = await start(dataDir);
    await writeMarkers(first, 'a written before the upgrade');
    await makeItOld(dataDir);
    await startOld(dataDir, portOf(first.databaseUrl), portOf(first.redisUrl));
    assert.ok(!existsSync(credentialsDir(dataDir)));

    const upgraded = await start(dataDir);
    assert.equal(portOf(upgraded.databaseUrl), portOf(first.databaseUrl), 'the running postgres was kept');
    assert.equal(portOf(upgraded.redisUrl), portOf(first.redisUrl), 'the running redis was kept');
    await assertLockedDown(upgraded);
    assertPrivateFiles(dataDir, upgraded);
    assert.match(
      readFileSync(path.join(clusterData(dataDir), 'pg_hba.conf'), 'utf8'),
      /^host all all 127\.0\.0\.1\/32 scram-sha-256$/m,
    );
    assert.doesNotMatch(readFileSync(path.join(clusterData(dataDir), 'pg_hba.conf'), 'utf8'), /trust/);
    assert.deepEqual(await readMarkers(upgraded), {
      pg: ['a written before the upgrade'],
      redis: ['a written before the upgrade'],
    });
    first = upgraded;
  });

  it('while stopped: the next start sets the password before the servers listen, the data stays', async () => {
    await writeMarkers(first, 'b written before the second upgrade');
    await makeItOld(dataDir);
    const upgraded = await start(dataDir);
    await assertLockedDown(upgraded);
    assertPrivateFiles(dataDir, upgraded);
    assert.deepEqual(await readMarkers(upgraded), {
      pg: ['a written before the upgrade', 'b written before the second upgrade'],
      redis: ['a written before the upgrade', 'b written before the second upgrade'],
    });
  });
});
