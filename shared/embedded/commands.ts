// Running the server binaries: as another system user when needed, in their own session (so a Ctrl-C
// aimed at the caller does not reach a database that outlives it), with output captured for errors.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export interface CommandResult {
  code: number;
  output: string;
}

export interface RunOptions {
  /** Run as this system user (via runuser); only when the caller is root. */
  user?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin (then closed); without it stdin is empty. */
  input?: string;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Runs a command to completion; resolves with its exit code and combined output, never rejects on a non-zero code. */
export function runCommand(file: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [cmd, argv] = opts.user ? ['runuser', ['-u', opts.user, '--', file, ...args]] : [file, args];
  return new Promise((resolve, reject) => {
    // cwd '/': a server user may not be allowed into the caller's working directory.
    const stdin = opts.input === undefined ? 'ignore' : 'pipe';
    const child = spawn(cmd, argv, {
      cwd: '/',
      detached: true,
      stdio: [stdin, 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // EPIPE when the command exits unread: its exit code tells
      child.stdin?.end(opts.input);
    }
    const chunks: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => chunks.push(c));
    child.stderr?.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : 1), output: Buffer.concat(chunks).toString('utf8').trim() });
    });
  });
}

/** Like runCommand, but a non-zero exit becomes an error carrying the command's last output line(s). */
export async function runChecked(what: string, file: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const result = await runCommand(file, args, opts);
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}): ${lastLines(result.output, 3)}`);
  return result.output;
}

export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}

/** The tail of a server log, for an error message when the server would not start. */
export function logTail(file: string, n = 5): string {
  try {
    return lastLines(readFileSync(file, 'utf8'), n);
  } catch {
    return '(no log)';
  }
}

/** True when `pid` is alive and its executable name is `name` (guards against a recycled pid in a stale pid file). */
export function isProcessRunning(pid: number, name: string): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) state ...". A zombie (Z) has exited but waits for its parent
    // (init, for a daemon whose starter has gone) to reap it.
    const m = /^\d+ \((.*)\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return m !== null && m[1] === name && m[2] !== 'Z' && m[2] !== 'X';
  } catch {
    return false;
  }
}

export function readPidFile(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** uid and gid of a system user, or undefined when there is no such user. */
export function systemUser(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
