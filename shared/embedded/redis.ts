// An embedded Redis: data, config, pid file and log under <dataDir>/redis, loopback only, append-only file
// fsynced every second so acknowledged jobs survive a restart. Every client must AUTH with the password
// generated once and kept in <dataDir>/credentials/redis.password (`requirepass`); a server started by an
// older Keyfarm without one is given it on the next start, while it runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { findRedisServer } from './binaries.js';
import { isProcessRunning, logTail, readPidFile, waitFor } from './commands.js';
import { ensurePassword, removePassword } from './credentials.js';
import { choosePort } from './ports.js';

export interface EmbeddedServer {
  url: string;
  port: number;
  /** False when an instance of the same data dir was already running and is being reused. */
  startedHere: boolean;
  /** Stops the server if this call started it; a reused instance is left running. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  dataDir: string;
  logger?: Logger;
}

const START_TIMEOUT_MS = 30_000;
const SILENT_MS = 5000;
const STOP_TIMEOUT_MS = 30_000;

function paths(dataDir: string) {
  const dir = path.join(path.resolve(dataDir), 'redis');
  return {
    dir,
    conf: path.join(dir, 'redis.conf'),
    pidFile: path.join(dir, 'redis.pid'),
    log: path.join(dir, 'redis.log'),
  };
}

function configuredPort(conf: string): number | undefined {
  if (!existsSync(conf)) return undefined;
  const m = /^port (\d+)$/m.exec(readFileSync(conf, 'utf8'));
  return m ? Number(m[1]) : undefined;
}

function runningPid(pidFile: string): number | undefined {
  const pid = readPidFile(pidFile);
  return pid !== undefined && isProcessRunning(pid, 'redis-server') ? pid : undefined;
}

function resp(command: string[]): string {
  return `*${command.length}\r\n${command.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
}

/**
 * Sends `commands` over a raw socket and resolves with their one-line replies (+OK, +PONG, -NOAUTH ...),
 * or undefined when the server cannot be reached or does not answer them all in time.
 */
export function redisExchange(port: number, commands: string[][], timeoutMs = 1000): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let text = '';
    const done = (replies: string[] | undefined) => {
      socket.destroy();
      resolve(replies);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('connect', () => socket.write(commands.map(resp).join('')));
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const lines = text.split('\r\n');
      if (lines.length > commands.length) done(lines.slice(0, commands.length));
    });
  });
}

/**
 * PING, after AUTH when a password is given: true on +PONG (a server still loading its AOF answers
 * -LOADING, one that wants a password -NOAUTH).
 */
export async function redisPing(port: number, timeoutMs = 1000, password?: string): Promise<boolean> {
  const commands = password === undefined ? [['PING']] : [['AUTH', password], ['PING']];
  const replies = await redisExchange(port, commands, timeoutMs);
  return replies?.at(-1)?.startsWith('+PONG') ?? false;
}

/**
 * A running server of this data dir: 'ok' when it takes the password, 'refused' when it wants another
 * one, 'silent' when nothing answers on its port. One started by an older Keyfarm (no password: it
 * answers PING without AUTH) is given the password at once.
 */
async function secureRunning(port: number, password: string, logger?: Logger): Promise<'ok' | 'refused' | 'silent'> {
  let replies: string[] | undefined;
  // Silent for 5 s: not (or no longer) our server. Loading its append-only file (-LOADING): waited for as for a start.
  const started = Date.now();
  await waitFor(
    async () => {
      replies = await redisExchange(port, [['AUTH', password], ['PING']]);
      if (replies === undefined) return Date.now() - started > SILENT_MS;
      return !replies[1]?.startsWith('-LOADING');
    },
    START_TIMEOUT_MS,
    200,
  );
  if (!replies || replies[1]?.startsWith('-LOADING')) return 'silent';
  const [auth = '', ping = ''] = replies;
  if (auth === '+OK' && ping === '+PONG') return 'ok';
  // AUTH refused yet PING answered: the server has no password at all.
  if (!auth.startsWith('-ERR') || ping !== '+PONG') return 'refused';
  const set = await redisExchange(port, [['CONFIG', 'SET', 'requirepass', password]]);
  if (set?.[0] !== '+OK')
    throw new Error(`embedded redis on port ${port} would not take a password: ${set?.[0] ?? 'no answer'}`);
  logger?.info({ port }, 'embedded redis had no password; it requires one now');
  return (await redisPing(port, 1000, password)) ? 'ok' : 'refused';
}

function writeConfig(p: ReturnType<typeof paths>, port: number, password: string): void {
  const lines = [
    '# Written by Keyfarm on each start of its embedded Redis; edits are overwritten.',
    'bind 127.0.0.1',
    `port ${port}`,
    'protected-mode yes',
    // The password kept in <DATA_DIR>/credentials/redis.password; this file is private (0600) like it.
    `requirepass ${password}`,
    `dir ${p.dir}`,
    'appendonly yes',
    'appendfsync everysec',
    'save ""',
    'daemonize no',
    `pidfile ${p.pidFile}`,
    `logfile ${p.log}`,
    // The shard queues, leases and claims must never be evicted.
    'maxmemory-policy noeviction',
  ];
  writeFileSync(p.conf, `${lines.join('\n')}\n`, { mode: 0o600 });
}

async function stopPid(pid: number): Promise<void> {
  // SIGTERM: Redis fsyncs the append-only file, removes its pid file and exits.
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitFor(() => !isProcessRunning(pid, 'redis-server'), STOP_TIMEOUT_MS)) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isProcessRunning(pid, 'redis-server'), 5000);
}

function spawnRedis(binary: string, conf: string): { pid: number; exited: () => boolean } {
  // Its own session, not waited for: the server outlives this process (the `services start` command).
  const child = spawn(binary, [conf], { cwd: '/', detached: true, stdio: 'ignore' });
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', () => (exited = true));
  child.unref();
  if (child.pid === undefined) throw new Error(`could not run ${binary}`);
  return { pid: child.pid, exited: () => exited };
}

function urlFor(port: number, password: string): string {
  return `redis://:${password}@127.0.0.1:${port}`;
}

export async function startRedis(opts: ServerOptions): Promise<EmbeddedServer> {
  const p = paths(opts.dataDir);
  mkdirSync(path.dirname(p.dir), { recursive: true });
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const password = ensurePassword(opts.dataDir, 'redis');

  const existing = runningPid(p.pidFile);
  const existingPort = configuredPort(p.conf);
  if (existing !== undefined && existingPort !== undefined) {
    const state = await secureRunning(existingPort, password, opts.logger);
    if (state === 'ok') {
      writeConfig(p, existingPort, password);
      opts.logger?.info(
        { port: existingPort, serverPid: existing, dir: p.dir },
        'embedded redis already running; reusing it',
      );
      return { url: urlFor(existingPort, password), port: existingPort, startedHere: false, stop: async () => {} };
    }
    if (state === 'refused') {
      // It knows another password (its file was deleted or replaced): restart it with the one kept now.
      opts.logger?.warn(
        { port: existingPort, serverPid: existing, dir: p.dir },
        'embedded redis refuses the kept password; restarting it to set it',
      );
      await stopPid(existing);
    }
  }

  const binary = findRedisServer();
  const refused: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await choosePort(`${p.dir}#redis`, configuredPort(p.conf), refused);
    writeConfig(p, port, password);
    const child = spawnRedis(binary, p.conf);
    const up = await waitFor(
      async () => child.exited() || (await redisPing(port, 1000, password)),
      START_TIMEOUT_MS,
      100,
    );
    if (up && !child.exited()) {
      opts.logger?.info({ port, serverPid: child.pid, dir: p.dir }, 'embedded redis started');
      return { url: urlFor(port, password), port, startedHere: true, stop: () => stopPid(child.pid) };
    }
    const tail = logTail(p.log, 3);
    if (!child.exited()) await stopPid(child.pid);
    if (!/Address already in use/i.test(tail)) throw new Error(`embedded redis did not start: ${tail} (log: ${p.log})`);
    refused.push(port);
  }
  throw new Error(`embedded redis did not start: no free port found (log: ${p.log})`);
}

/** Stops the Redis of a data dir, whoever started it. */
export async function stopRedis(dataDir: string, logger?: Logger): Promise<boolean> {
  const p = paths(dataDir);
  const pid = runningPid(p.pidFile);
  if (pid === undefined) return false;
  await stopPid(pid);
  logger?.info({ serverPid: pid, dir: p.dir }, 'embedded redis stopped');
  return true;
}

export async function removeRedisData(dataDir: string, logger?: Logger): Promise<void> {
  await stopRedis(dataDir, logger);
  rmSync(paths(dataDir).dir, { recursive: true, force: true });
  removePassword(dataDir, 'redis');
}
