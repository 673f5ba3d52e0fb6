// What the numbers were measured on.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  wrk: string;
  /** 1, 5 and 15 minute load averages when the bench started: others share this machine. */
  loadAverageAtStart: number[];
}

function wrkVersion(): string {
  try {
    // `wrk -v` prints its banner and exits non-zero
    execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return 'unknown';
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
    return out.split('\n')[0]?.trim() || 'not installed';
  }
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: release(),
    wrk: wrkVersion(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
