// An embedded PostgreSQL: a cluster under <dataDir>/postgres (initdb'd on first start), listening on
// 127.0.0.1 only (no Unix socket), with a `keyfarm` database. Every login needs the superuser's password
// (SCRAM-SHA-256), generated once and kept in <dataDir>/credentials/postgres.password; it is set again on
// each start (the file is the truth), and a cluster made by an older Keyfarm with trust auth is switched
// over on its next start, while running or not.
//
// PostgreSQL refuses to run as root. Run as root, the cluster belongs to the `postgres` system user and
// every server command runs through runuser. That user must be able to reach the data dir; when a parent
// directory shuts it out (a clone under /root, a 0700 temp dir), the cluster lives under /var/lib/keyfarm/
// instead and <dataDir>/postgres is a symlink to it.
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { MissingBinaryError, findPostgres, type PostgresBinaries } from './binaries.js';
import {
  isProcessRunning,
  isRoot,
  lastLines,
  logTail,
  readPidFile,
  runCommand,
  runChecked,
  systemUser,
  waitFor,
} from './commands.js';
import { ensurePassword, removePassword } from './credentials.js';
import { choosePort } from './ports.js';
import type { EmbeddedServer, ServerOptions } from './redis.js';
import { scramSha256Verifier } from './scram.js';

export interface PostgresOptions extends ServerOptions {
  /** False: no fsync (test data that may be lost on a machine crash, in exchange for speed). Default true. */
  durable?: boolean;
}

export const EMBEDDED_DATABASE = 'keyfarm';
const SUPERUSER = 'postgres';
const SERVER_USER = 'postgres';
const RELOCATED_ROOT = '/var/lib/keyfarm';
const CONF_FILE = 'keyfarm.conf';
/** Password logins from loopback only; no Unix socket is opened, so there is no `local` line. */
const HBA = [
  '# Written by Keyfarm on each start of its embedded PostgreSQL; edits are overwritten.',
  '# Every login needs the password kept in <DATA_DIR>/credentials/postgres.password.',
  'host all all 127.0.0.1/32 scram-sha-256',
].join('\n');
/** SQLSTATEs of a refused login: invalid_password, invalid_authorization_specification (no pg_hba.conf line). */
const LOGIN_REFUSED = new Set(['28P01', '28000']);

interface ClusterPaths {
  home: string;
  pgdata: string;
  log: string;
  conf: string;
  hba: string;
}

function homeOf(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'postgres');
}

function clusterPaths(home: string): ClusterPaths {
  const pgdata = path.join(home, 'data');
  return {
    home,
    pgdata,
    log: path.join(home, 'server.log'),
    conf: path.join(pgdata, CONF_FILE),
    hba: path.join(pgdata, 'pg_hba.conf'),
  };
}

/** The system user the server runs as, or undefined for "the current user". */
function serverUser(): { name: string; uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const user = systemUser(SERVER_USER);
  if (!user) throw new MissingBinaryError(`the ${SERVER_USER} system user`, 'postgresql', 'DATABASE_URL');
  return { name: SERVER_USER, ...user };
}

function giveToServerUser(file: string): void {
  const user = serverUser();
  if (user) chownSync(file, user.uid, user.gid);
}

async function serverUserCanWrite(dir: string): Promise<boolean> {
  const user = serverUser();
  if (!user) return true;
  return (await runCommand('test', ['-w', dir], { user: user.name })).code === 0;
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

function relocatedHome(home: string): string {
  const id = createHash('sha256').update(home).digest('hex').slice(0, 16);
  return path.join(RELOCATED_ROOT, `pg-${id}`);
}

/** Creates <dataDir>/postgres (or its relocated target) owned by the server user; returns the real cluster home. */
async function prepareHome(dataDir: string, logger?: Logger): Promise<ClusterPaths> {
  const home = homeOf(dataDir);
  if (isSymlink(home)) {
    if (existsSync(home)) return clusterPaths(realpathSync(home));
    rmSync(home); // its target was removed: start over
  }
  const fresh = !existsSync(home);
  mkdirSync(path.dirname(home), { recursive: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  giveToServerUser(home);
  if (await serverUserCanWrite(home)) return clusterPaths(home);
  if (!fresh && readdirSync(home).length > 0) {
    throw new Error(
      `the ${SERVER_USER} system user cannot reach ${home}; make its parent directories traversable (chmod o+x)`,
    );
  }
  rmSync(home, { recursive: true, force: true });
  const target = relocatedHome(home);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(RELOCATED_ROOT, { recursive: true });
  chmodSync(RELOCATED_ROOT, 0o755); // traversable by the server user
  mkdirSync(target, { mode: 0o700 });
  giveToServerUser(target);
  symlinkSync(target, home);
  logger?.info(
    { dir: home, cluster: target },
    `the ${SERVER_USER} user cannot reach the data dir; the cluster lives in ${RELOCATED_ROOT}`,
  );
  return clusterPaths(target);
}

/** The cluster of a data dir if it exists, without creating anything. */
function existingCluster(dataDir: string): ClusterPaths | undefined {
  const home = homeOf(dataDir);
  if (!existsSync(home)) return undefined;
  const paths = clusterPaths(realpathSync(home));
  return existsSync(path.join(paths.pgdata, 'PG_VERSION')) ? paths : undefined;
}

function clusterVersion(paths: ClusterPaths): string | undefined {
  const file = path.join(paths.pgdata, 'PG_VERSION');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** pid and port of the postmaster serving this cluster, from its postmaster.pid. */
function runningServer(paths: ClusterPaths): { pid: number; port: number } | undefined {
  const pidFile = path.join(paths.pgdata, 'postmaster.pid');
  const pid = readPidFile(pidFile);
  if (pid === undefined || !isProcessRunning(pid, 'postgres')) return undefined;
  const port = Number(readFileSync(pidFile, 'utf8').split('\n')[3]);
  return Number.isInteger(port) && port > 0 ? { pid, port } : undefined;
}

function configuredPort(paths: ClusterPaths): number | undefined {
  if (!existsSync(paths.conf)) return undefined;
  const m = /^port = (\d+)$/m.exec(readFileSync(paths.conf, 'utf8'));
  return m ? Number(m[1]) : undefined;
}

async function initCluster(
  bins: PostgresBinaries,
  paths: ClusterPaths,
  durable: boolean,
  logger?: Logger,
): Promise<void> {
  // No login is let in until Keyfarm has set the password and written its own pg_hba.conf.
  const args = ['-D', paths.pgdata, '-U', SUPERUSER, '--auth=reject', '-E', 'UTF8', '--locale=C'];
  if (!durable) args.push('--no-sync');
  await runChecked('initdb', bins.initdb, args, { user: serverUser()?.name });
  appendFileSync(path.join(paths.pgdata, 'postgresql.conf'), `\ninclude_if_exists = '${CONF_FILE}'\n`);
  logger?.info({ dir: paths.pgdata, version: bins.version }, 'embedded postgres cluster created');
}

function writeConfig(paths: ClusterPaths, port: number, durable: boolean): void {
  const lines = [
    '# Written by Keyfarm on each start of its embedded PostgreSQL; edits are overwritten.',
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    "unix_socket_directories = ''",
    "password_encryption = 'scram-sha-256'",
    'max_connections = 200',
    ...(durable ? [] : ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off']),
  ];
  writeFileSync(paths.conf, `${lines.join('\n')}\n`, { mode: 0o600 });
  giveToServerUser(paths.conf);
}

function writeHba(paths: ClusterPaths): void {
  writeFileSync(paths.hba, `${HBA}\n`, { mode: 0o600 });
  giveToServerUser(paths.hba);
}

function hbaIsKeyfarms(paths: ClusterPaths): boolean {
  try {
    return readFileSync(paths.hba, 'utf8') === `${HBA}\n`;
  } catch {
    return false;
  }
}

function alterPasswordSql(password: string): string {
  return `ALTER ROLE ${SUPERUSER} PASSWORD '${scramSha256Verifier(password)}'`;
}

/**
 * Sets the superuser's password in single-user mode (the cluster is stopped, nothing listens). Only the
 * SCRAM verifier goes to the server, on stdin.
 */
async function setPasswordOffline(bins: PostgresBinaries, paths: ClusterPaths, password: string): Promise<void> {
  const result = await runCommand(bins.postgres, ['--single', '-D', paths.pgdata, 'postgres'], {
    user: serverUser()?.name,
    input: `${alterPasswordSql(password)};\n`,
  });
  if (result.code !== 0 || /\b(?:ERROR|FATAL|PANIC):/.test(result.output)) {
    // The STATEMENT line would repeat the verifier: the error lines say enough.
    const errors = result.output
      .split('\n')
      .filter((l) => /\b(?:ERROR|FATAL|PANIC):/.test(l))
      .join('\n');
    throw new Error(
      `setting the embedded postgres password failed (exit ${result.code}): ${lastLines(errors || result.output, 3)}`,
    );
  }
}

function superuserClient(port: number, password: string, database = 'postgres'): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database, connectionTimeoutMillis: 5000 });
}

/** A connected superuser client, or 'refused' when the server turns the password down; retries while it starts up. */
async function logIn(port: number, password: string, timeoutMs = 10_000): Promise<pg.Client | 'refused'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = superuserClient(port, password);
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (LOGIN_REFUSED.has((err as { code?: string }).code ?? '')) return 'refused';
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * A running server of this data dir: true when it takes the password. One started by an older Keyfarm
 * (trust auth, which takes any password) is given the password and switched to SCRAM while it runs.
 */
async function secureRunning(paths: ClusterPaths, port: number, password: string, logger?: Logger): Promise<boolean> {
  const client = await logIn(port, password);
  if (client === 'refused') return false;
  try {
    if (hbaIsKeyfarms(paths)) return true;
    await client.query(alterPasswordSql(password));
    writeHba(paths);
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
  // The postmaster rereads pg_hba.conf on the signal pg_reload_conf() sends: wait until it refuses a wrong password.
  const wrong = randomBytes(16).toString('hex');
  const switched = await waitFor(
    async () => {
      const attempt = await logIn(port, wrong, 1000).catch(() => undefined);
      if (attempt instanceof pg.Client) await attempt.end();
      return attempt === 'refused';
    },
    10_000,
    100,
  );
  if (!switched)
    throw new Error(
      `embedded postgres on port ${port} still lets logins in without the password after a reload of pg_hba.conf`,
    );
  logger?.info({ port, dir: paths.pgdata }, 'embedded postgres switched from trust to password (SCRAM) authentication');
  return true;
}

async function ensureDatabase(port: number, password: string): Promise<void> {
  const client = superuserClient(port, password);
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile by a concurrent start
      });
    }
  } finally {
    await client.end();
  }
}

async function pgCtlStop(bins: PostgresBinaries, paths: ClusterPaths): Promise<void> {
  await runChecked('pg_ctl stop', bins.pgCtl, ['stop', '-D', paths.pgdata, '-m', 'fast', '-w', '-t', '60', '-s'], {
    user: serverUser()?.name,
  });
}

function urlFor(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/${EMBEDDED_DATABASE}`;
}

export async function startPostgres(opts: PostgresOptions): Promise<EmbeddedServer> {
  const durable = opts.durable ?? true;
  const paths = await prepareHome(opts.dataDir, opts.logger);
  const password = ensurePassword(opts.dataDir, 'postgres');

  const running = runningServer(paths);
  if (running) {
    if (await secureRunning(paths, running.port, password, opts.logger)) {
      await ensureDatabase(running.port, password);
      opts.logger?.info(
        { port: running.port, serverPid: running.pid, dir: paths.pgdata },
        'embedded postgres already running; reusing it',
      );
      return { url: urlFor(running.port, password), port: running.port, startedHere: false, stop: async () => {} };
    }
    // It knows another password (its file was deleted or replaced): restart it with the one kept now.
    opts.logger?.warn(
      { port: running.port, serverPid: running.pid, dir: paths.pgdata },
      'embedded postgres refuses the kept password; restarting it to set it',
    );
    await pgCtlStop(findPostgres(clusterVersion(paths)), paths);
  }

  const bins = findPostgres(clusterVersion(paths));
  if (clusterVersion(paths) === undefined) await initCluster(bins, paths, durable, opts.logger);
  await setPasswordOffline(bins, paths, password);
  writeHba(paths);

  const refused: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await choosePort(`${homeOf(opts.dataDir)}#postgres`, configuredPort(paths), refused);
    writeConfig(paths, port, durable);
    const result = await runCommand(
      bins.pgCtl,
      ['start', '-D', paths.pgdata, '-l', paths.log, '-w', '-t', '60', '-s'],
      {
        user: serverUser()?.name,
      },
    );
    if (result.code === 0) {
      await ensureDatabase(port, password);
      opts.logger?.info({ port, dir: paths.pgdata }, 'embedded postgres started');
      return { url: urlFor(port, password), port, startedHere: true, stop: () => pgCtlStop(bins, paths) };
    }
    const tail = logTail(paths.log, 3);
    if (!/could not bind|already in use/i.test(tail)) {
      throw new Error(`embedded postgres did not start: ${tail} (log: ${paths.log})`);
    }
    refused.push(port);
  }
  throw new Error(`embedded postgres did not start: no free port found (log: ${paths.log})`);
}

/** Stops the PostgreSQL of a data dir, whoever started it. */
export async function stopPostgres(dataDir: string, logger?: Logger): Promise<boolean> {
  const paths = existingCluster(dataDir);
  if (!paths) return false;
  const running = runningServer(paths);
  if (!running) return false;
  await pgCtlStop(findPostgres(clusterVersion(paths)), paths);
  logger?.info({ serverPid: running.pid, dir: paths.pgdata }, 'embedded postgres stopped');
  return true;
}

export async function removePostgresData(dataDir: string, logger?: Logger): Promise<void> {
  await stopPostgres(dataDir, logger);
  const home = homeOf(dataDir);
  if (isSymlink(home) && existsSync(home)) rmSync(realpathSync(home), { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
  removePassword(dataDir, 'postgres');
}
