// Keyfarm processes under test: `node dist/bin/keyfarm.js <role>` with its output appended to a file in
// test-artifacts/logs/, started once it is ready (a log line, or an HTTP URL answering 200), and killed
// when the test file ends whether or not the test stopped it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { maskSecrets, testLogFile } from './logs.js';
import { KEYFARM_CLI, PROJECT_ROOT } from './paths.js';

export type Readiness = { log: RegExp } | { url: string };

export interface SpawnKeyfarmOptions {
  /** When the process counts as started. Without it, spawnKeyfarm resolves at once. */
  ready?: Readiness;
  /** How long readiness may take (default 30 s). */
  timeoutMs?: number;
  /** Arguments after the role. */
  args?: string[];
  /** Label in the log file name (default: the role). */
  name?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface KeyfarmProcess {
  readonly role: string;
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** Sends a signal (default SIGTERM) and returns at once. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `timeoutMs` (default 10 s); resolves with the exit status. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
  /** Waits for a line of this process's output matching `pattern`; resolves with the line. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Everything this process has written so far (not an earlier run's output in the same file). */
  output(): string;
}

const live = new Set<KeyfarmProcess>();
const counters = new Map<string, number>();
let cleanupInstalled = false;

function killAllNow(): void {
  for (const p of live) if (!p.hasExited()) p.child.kill('SIGKILL');
}

/** Children must not outlive the test file, even when it fails, forgets them or is cancelled. */
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAllNow();
      process.kill(process.pid, signal);
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete merged.NODE_TEST_CONTEXT; // set by node's runner for its own children; Keyfarm is not one
  return merged;
}

function readFrom(file: string, offset: number): string {
  if (!existsSync(file)) return '';
  return readFileSync(file).subarray(offset).toString('utf8');
}

function tail(text: string, lines: number): string {
  return maskSecrets(text.split('\n').filter(Boolean).slice(-lines).join('\n'));
}

async function urlAnswers200(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function spawnKeyfarm(
  role: string,
  env: Record<string, string>,
  opts: SpawnKeyfarmOptions = {},
): Promise<KeyfarmProcess> {
  installCleanup();
  const label = opts.name ?? role;
  const n = (counters.get(label) ?? 0) + 1;
  counters.set(label, n);
  const logFile = testLogFile(`${label}-${n}`);
  const fd = openSync(logFile, 'a');
  const startOffset = statSync(logFile).size; // the file may hold an earlier run's output
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [KEYFARM_CLI, role, ...(opts.args ?? [])], {
      cwd: PROJECT_ROOT,
      env: childEnv(env),
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  // Not holding the test file's event loop open; stop() re-refs while it waits.
  child.unref();
  let status: ExitStatus | undefined;
  const exitedPromise = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
    child.once('error', () => {
      status = { code: null, signal: null };
      resolve(status);
    });
  });
  const output = () => readFrom(logFile, startOffset);
  const describe = () => `keyfarm ${role} (log ${path.relative(PROJECT_ROOT, logFile)})`;

  const proc: KeyfarmProcess = {
    role,
    pid: child.pid ?? -1,
    logFile,
    child,
    get exited() {
      child.ref(); // someone waits for the exit: keep the event loop alive until it comes
      return exitedPromise;
    },
    hasExited: () => status !== undefined,
    output,
    kill(signal = 'SIGTERM') {
      if (status === undefined) {
        child.ref();
        child.kill(signal);
      }
    },
    async stop(timeoutMs = 10_000) {
      if (status !== undefined) return status;
      child.ref();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exitedPromise;
      clearTimeout(timer);
      live.delete(proc);
      return result;
    },
    async waitForLog(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = output()
          .split('\n')
          .find((l) => pattern.test(l));
        if (line !== undefined) return line;
        if (status !== undefined) {
          throw new Error(
            `${describe()} exited (${status.code ?? status.signal}) before logging ${pattern}:\n${tail(output(), 10)}`,
          );
        }
        if (Date.now() > deadline)
          throw new Error(`${describe()} did not log ${pattern} within ${timeoutMs} ms:\n${tail(output(), 10)}`);
        await sleep(50);
      }
    },
  };
  live.add(proc);
  void exitedPromise.then(() => live.delete(proc));

  try {
    await waitUntilReady(proc, opts.ready, opts.timeoutMs ?? 30_000, describe, output, () => status);
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
  return proc;
}

async function waitUntilReady(
  proc: KeyfarmProcess,
  ready: Readiness | undefined,
  timeoutMs: number,
  describe: () => string,
  output: () => string,
  status: () => ExitStatus | undefined,
): Promise<void> {
  if (!ready) return;
  if ('log' in ready) {
    await proc.waitForLog(ready.log, timeoutMs);
    return;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await urlAnswers200(ready.url)) return;
    const s = status();
    if (s !== undefined)
      throw new Error(
        `${describe()} exited (${s.code ?? s.signal}) before ${ready.url} answered:\n${tail(output(), 10)}`,
      );
    if (Date.now() > deadline)
      throw new Error(`${describe()}: ${ready.url} did not answer 200 within ${timeoutMs} ms:\n${tail(output(), 10)}`);
    await sleep(100);
  }
}

/** Stops every Keyfarm process this test file started and has not stopped (for an `after` hook). */
export async function stopAllKeyfarms(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}
