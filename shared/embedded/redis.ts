// An embedded Redis: data, config, pid file and log under <dataDir>/redis, loopback only, append-only file
// fsynced every second so acknowledged jobs survive a restart.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { findRedisServer } from './binaries.js';
import { isProcessRunning, logTail, readPidFile, waitFor } from './commands.js';
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
const STOP_TIMEOUT_MS = 30_000;

function paths(dataDir: string) {
  const dir = path.join(path.resolve(dataDir), 'redis');
  return { dir, conf: path.join(dir, 'redis.conf'), pidFile: path.join(dir, 'redis.pid'), log: path.join(dir, 'redis.log') };
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

/** One PING over a raw socket: true on +PONG (a server still loading its AOF answers -LOADING). */
export function redisPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function writeConfig(p: ReturnType<typeof paths>, port: number): void {
  const lines = [
    '# Written by Keyfarm on each start of its embedded Redis; edits are overwritten.',
    'bind 127.0.0.1',
    `port ${port}`,
    'protected-mode yes',
    `dir ${p.dir}`,
    'appendonly yes',
    'appendfsync everysec',
    'save ""',
    'daemonize no',
    `pidfile ${p.pidFile}`,
    `logfile ${p.log}`,
    // BullMQ requires that Redis never evicts its keys.
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

export async function startRedis(opts: ServerOptions): Promise<EmbeddedServer> {
  const p = paths(opts.dataDir);
  mkdirSync(path.dirname(p.dir), { recursive: true });
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });

  const existing = runningPid(p.pidFile);
  const existingPort = configuredPort(p.conf);
  if (existing !== undefined && existingPort !== undefined && (await waitFor(() => redisPing(existingPort), 5000, 200))) {
    opts.logger?.info({ port: existingPort, serverPid: existing, dir: p.dir }, 'embedded redis already running; reusing it');
    return { url: `redis://127.0.0.1:${existingPort}`, port: existingPort, startedHere: false, stop: async () => {} };
  }

  const binary = findRedisServer();
  const refused: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await choosePort(`${p.dir}#redis`, configuredPort(p.conf), refused);
    writeConfig(p, port);
    const child = spawnRedis(binary, p.conf);
    const up = await waitFor(async () => child.exited() || (await redisPing(port)), START_TIMEOUT_MS, 100);
    if (up && !child.exited()) {
      opts.logger?.info({ port, serverPid: child.pid, dir: p.dir }, 'embedded redis started');
      return { url: `redis://127.0.0.1:${port}`, port, startedHere: true, stop: () => stopPid(child.pid) };
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
}
