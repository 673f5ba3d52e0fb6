import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  MissingBinaryError,
  removeEmbeddedServicesData,
  startEmbeddedServices,
  type EmbeddedServices,
} from '../../shared/embedded-services.js';
import { findPostgres } from '../../shared/embedded/binaries.js';
import { recordSecret, testLogger } from '../support/logs.js';

// A 0700 temp dir: run as root, the postgres user cannot enter it, so this also covers the relocated cluster.
const dataDir = mkdtempSync(path.join(tmpdir(), 'kf-embedded-'));
const logger = testLogger('embedded-services');
let services: EmbeddedServices | undefined;

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function withRedis<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** Starts the servers and records the generated passwords their URLs carry, for the secret scan. */
async function start(durable = false): Promise<EmbeddedServices> {
  const started = await startEmbeddedServices({ dataDir, logger, durable });
  for (const url of [started.databaseUrl, started.redisUrl]) recordSecret(decodeURIComponent(new URL(url).password));
  return started;
}

before(async () => {
  services = await start();
});

after(async () => {
  await services?.stop();
  await removeEmbeddedServicesData(dataDir, logger);
  rmSync(dataDir, { recursive: true, force: true });
});

test('serves PostgreSQL and Redis on loopback ports of its own', async () => {
  assert.ok(services);
  const db = new URL(services.databaseUrl);
  const redis = new URL(services.redisUrl);
  assert.equal(db.hostname, '127.0.0.1');
  assert.equal(db.pathname, '/keyfarm');
  assert.equal(redis.hostname, '127.0.0.1');
  assert.ok(![5432, 6379].includes(portOf(services.databaseUrl)));
  assert.ok(![5432, 6379].includes(portOf(services.redisUrl)));
  assert.deepEqual(await withPg(services.databaseUrl, async (c) => (await c.query('SELECT 1 AS one')).rows), [
    { one: 1 },
  ]);
  assert.equal(await withRedis(services.redisUrl, (r) => r.ping()), 'PONG');
});

test('a second start on the same data dir reuses the running servers and leaves them running', async () => {
  assert.ok(services);
  const again = await startEmbeddedServices({ dataDir, logger });
  assert.equal(again.databaseUrl, services.databaseUrl);
  assert.equal(again.redisUrl, services.redisUrl);
  await again.stop();
  assert.equal(await withRedis(services.redisUrl, (r) => r.ping()), 'PONG');
  assert.deepEqual(await withPg(services.databaseUrl, async (c) => (await c.query('SELECT 2 AS two')).rows), [
    { two: 2 },
  ]);
});

test('data survives a stop and a start, on the same ports', async () => {
  assert.ok(services);
  const first = services;
  await withPg(first.databaseUrl, async (c) => {
    await c.query('CREATE TABLE survivors (name text PRIMARY KEY)');
    await c.query("INSERT INTO survivors VALUES ('row written before the restart')");
  });
  await withRedis(first.redisUrl, (r) => r.set('survivor', 'key written before the restart'));

  await first.stop();
  services = undefined;
  assert.ok(await refusesConnections(portOf(first.databaseUrl)), 'postgres still listening after stop()');
  assert.ok(await refusesConnections(portOf(first.redisUrl)), 'redis still listening after stop()');
  assert.ok(!existsSync(path.join(dataDir, 'redis', 'redis.pid')), 'redis pid file left behind');
  assert.ok(!existsSync(path.join(dataDir, 'postgres', 'data', 'postmaster.pid')), 'postmaster.pid left behind');

  services = await start();
  assert.equal(services.databaseUrl, first.databaseUrl);
  assert.equal(services.redisUrl, first.redisUrl);
  const rows = await withPg(services.databaseUrl, async (c) => (await c.query('SELECT name FROM survivors')).rows);
  assert.deepEqual(rows, [{ name: 'row written before the restart' }]);
  assert.equal(await withRedis(services.redisUrl, (r) => r.get('survivor')), 'key written before the restart');
});

test('removing the data stops the servers and deletes the cluster wherever it lives', async () => {
  assert.ok(services);
  const { databaseUrl, redisUrl } = services;
  const pgHome = path.join(dataDir, 'postgres');
  const relocatedTo = lstatSync(pgHome).isSymbolicLink() ? readlinkSync(pgHome) : undefined;
  await removeEmbeddedServicesData(dataDir, logger);
  services = undefined;
  assert.ok(await refusesConnections(portOf(databaseUrl)));
  assert.ok(await refusesConnections(portOf(redisUrl)));
  assert.ok(!existsSync(pgHome));
  assert.ok(!existsSync(path.join(dataDir, 'redis')));
  if (relocatedTo !== undefined) assert.ok(!existsSync(relocatedTo), 'relocated cluster left behind');
});

test('a missing server binary is one line naming the Debian package to install', () => {
  assert.throws(
    () => findPostgres('99'),
    (err: unknown) =>
      err instanceof MissingBinaryError &&
      err.message ===
        'PostgreSQL 99 server not found: install the Debian package postgresql-99 (apt-get install postgresql-99), or set DATABASE_URL to use an existing server',
  );
});
