// CPU time from /proc, so a run can say which process ate the two cores: per process (utime + stime of
// all its threads), per process tree (PostgreSQL's backends), and for the machine as a whole.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  comm: string;
  ppid: number;
  /** Own user + system seconds (all threads). */
  selfS: number;
  /** User + system seconds of children it has waited for. */
  reapedS: number;
}

/** Fields of /proc/<pid>/stat (or of one thread's stat file); undefined when it is gone. */
function readStat(pid: number, file = `/proc/${pid}/stat`): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: the fields that follow start after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14 -> f[11], stime f[12], cutime f[13], cstime f[14], ppid f[1].
  const n = (i: number) => Number(f[i]) / CLOCK_TICKS;
  return { comm, ppid: Number(f[1]), selfS: n(11) + n(12), reapedS: n(13) + n(14) };
}

/** CPU seconds used so far by one process (its threads included); undefined when it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.selfS;
}

/**
 * CPU seconds of a process's main thread alone: in Node, the event loop (HTTP, Redis clients, the
 * shard queue, JSON), as against worker threads, the libuv pool and V8's helpers.
 */
export function mainThreadCpuSeconds(pid: number): number | undefined {
  return readStat(pid, `/proc/${pid}/task/${pid}/stat`)?.selfS;
}

/**
 * CPU seconds of a process, its live children, and the children it has reaped: a PostgreSQL postmaster
 * and its backends.
 */
export function processTreeCpuSeconds(rootPid: number): number | undefined {
  const root = readStat(rootPid);
  if (!root) return undefined;
  let total = root.selfS + root.reapedS;
  for (const [pid, s] of allProcesses()) if (pid !== rootPid && s.ppid === rootPid) total += s.selfS;
  return total;
}

function allProcesses(): Map<number, ProcStat> {
  const all = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) all.set(Number(name), s);
  }
  return all;
}

export type ProcessTable = Map<number, { comm: string; ppid: number; seconds: number }>;

/** Every process's CPU seconds so far, to find afterwards who else was busy during a run. */
export function processTable(): ProcessTable {
  const table: ProcessTable = new Map();
  for (const [pid, s] of allProcesses()) table.set(pid, { comm: s.comm, ppid: s.ppid, seconds: s.selfS });
  return table;
}

/**
 * The busiest processes between two tables other than `ours` and their children: `comm[pid]` and CPU
 * seconds, most first. Processes born and gone between the two tables are not seen.
 */
export function busiestOthers(
  before: ProcessTable,
  after: ProcessTable,
  ours: ReadonlySet<number>,
  top = 5,
): { process: string; seconds: number }[] {
  const rows: { process: string; seconds: number }[] = [];
  for (const [pid, a] of after) {
    if (ours.has(pid) || ours.has(a.ppid)) continue;
    const used = a.seconds - (before.get(pid)?.seconds ?? 0);
    if (used > 0) rows.push({ process: `${describeProcess(pid) ?? a.comm}[${pid}]`, seconds: used });
  }
  return rows.sort((x, y) => y.seconds - x.seconds).slice(0, top);
}

/** The program and its first argument, base names only ("node farm-rpc.test.js"): never the full command line. */
function describeProcess(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    if (argv.length === 0) return undefined;
    return argv
      .slice(0, 2)
      .map((a) => path.basename(a))
      .join(' ');
  } catch {
    return undefined;
  }
}

/** The bench process's own CPU seconds and those of the children it has reaped (wrk, once it exits). */
export function selfCpuSeconds(): { self: number; reapedChildren: number } {
  const s = readStat(process.pid)!;
  return { self: s.selfS, reapedChildren: s.reapedS };
}

/**
 * Busy (non-idle, non-iowait) and total CPU seconds of the whole machine since boot, all cores, and the
 * part of busy spent in interrupts (loopback networking's softirq work lands there, attributed to no process).
 */
export function machineCpuSeconds(): { busy: number; total: number; irq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const irq = (ticks[5] ?? 0) + (ticks[6] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS, irq: irq / CLOCK_TICKS };
}
