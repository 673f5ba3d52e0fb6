// One Keyfarm process started by the bench: `node dist/bin/keyfarm.js <role>` with the bench's settings,
// its output in a log file, ready once its HTTP API answers (api, all) or it logs that it started
// (workers, migrate's exit).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/env.js';
import { NODE_OPTIONS } from '../bin/node-options.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(PROJECT_ROOT, 'dist', 'bin', 'keyfarm.js');

export type Role = 'all' | 'api' | 'workers' | 'migrate';

export interface FarmProcess {
  readonly name: string;
  readonly role: Role;
  readonly pid: number;
  readonly logFile: string;
  /** http://127.0.0.1:<port> for roles with an HTTP API. */
  readonly url?: string;
  /** Readiness checks that failed when the process was taken as ready (see servesRpc). */
  readonly notReady?: Record<string, string>;
  /** SIGTERM, then SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export interface StartOptions {
  name: string;
  role: Role;
  env: Record<string, string>;
  logDir: string;
  timeoutMs?: number;
  /** The keyfarm CLI to run (default this checkout's dist/bin/keyfarm.js): bench/ab.ts compares two builds. */
  cli?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/**
 * Whether the process can serve the bench: /healthz/ready answers with its Postgres and Redis checks ok.
 * Other failing checks (relay-ingest's "relays" without BUNKER_RELAYS, in `all`) do not stop the bench
 * and are returned so the report can name them.
 */
async function servesRpc(base: string): Promise<{ ok: boolean; otherFailing?: Record<string, string> }> {
  try {
    const res = await fetch(`${base}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json().catch(() => ({}))) as { checks?: Record<string, string> };
    if (res.status === 200) return { ok: true };
    const checks = body.checks ?? {};
    if (checks.postgres !== 'ok' || checks.redis !== 'ok') return { ok: false };
    const otherFailing = Object.fromEntries(Object.entries(checks).filter(([, v]) => v !== 'ok'));
    return { ok: true, otherFailing };
  } catch {
    return { ok: false };
  }
}

function watchExit(child: ChildProcess): { exited: Promise<void>; status: () => string | undefined } {
  let status: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      status = `exit ${code ?? signal}`;
      resolve();
    });
    child.once('error', (err) => {
      status = `spawn error ${err.message}`;
      resolve();
    });
  });
  return { exited, status: () => status };
}

export async function startFarmProcess(opts: StartOptions): Promise<FarmProcess> {
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, `${opts.name}.log`);
  const hasHttp = opts.role === 'all' || opts.role === 'api';
  const port = hasHttp ? await freePort() : undefined;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_OPTIONS: [NODE_OPTIONS, process.env.NODE_OPTIONS].filter(Boolean).join(' '),
    ...opts.env,
    ...(port ? { PORT: String(port), HOST: '127.0.0.1' } : {}),
  };
  const fd = openSync(logFile, 'a');
  // KEYFARM_BENCH_NODE_ARGS: flags for the farm's node only, e.g. "--cpu-prof --cpu-prof-dir=DIR" (not allowed in
  // NODE_OPTIONS); in opts.env it is this process's own (an A/B variant's V8 flags).
  const nodeArgs = (opts.env.KEYFARM_BENCH_NODE_ARGS ?? process.env.KEYFARM_BENCH_NODE_ARGS ?? '')
    .split(' ')
    .filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, opts.cli ?? CLI, opts.role], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const { exited, status } = watchExit(child);
  const url = port ? `http://127.0.0.1:${port}` : undefined;
  const fail = (why: string) =>
    new Error(
      `keyfarm ${opts.role} (${opts.name}) ${why}; log ${path.relative(PROJECT_ROOT, logFile)}:\n${lastLines(logFile, 15)}`,
    );

  const proc: { -readonly [K in keyof FarmProcess]: FarmProcess[K] } = {
    name: opts.name,
    role: opts.role,
    pid: child.pid ?? -1,
    logFile,
    url,
    async stop() {
      if (status() !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (opts.role === 'migrate') {
      await Promise.race([exited, sleep(200)]);
      const s = status();
      if (s === 'exit 0') return proc;
      if (s !== undefined) throw fail(`failed (${s})`);
    } else {
      if (url) {
        const ready = await servesRpc(url);
        if (ready.ok) {
          if (ready.otherFailing && Object.keys(ready.otherFailing).length > 0) proc.notReady = ready.otherFailing;
          return proc;
        }
      } else if (lastLines(logFile, 50).includes('"msg":"keyfarm started"')) {
        return proc;
      }
      const s = status();
      if (s !== undefined) throw fail(`stopped before it was ready (${s})`);
      await sleep(150);
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw fail('was not ready in time');
    }
  }
}
