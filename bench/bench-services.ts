// The embedded PostgreSQL and Redis every bench process shares: started once over a wiped data dir, with
// the server pids found so their CPU time can be counted.
import { readFileSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  removeEmbeddedServicesData,
  startEmbeddedServices,
  type EmbeddedServices,
} from '../shared/embedded-services.js';

export interface BenchServices extends EmbeddedServices {
  /** The postmaster (its backends are its children); undefined if its pid file could not be read. */
  postgresPid?: number;
  redisPid?: number;
}

function pidFrom(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function startBenchServices(dataDir: string): Promise<BenchServices> {
  await removeEmbeddedServicesData(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
  const services = await startEmbeddedServices({ dataDir });
  let pgHome: string | undefined;
  try {
    pgHome = realpathSync(path.join(dataDir, 'postgres'));
  } catch {
    pgHome = undefined;
  }
  return {
    ...services,
    postgresPid: pgHome ? pidFrom(path.join(pgHome, 'data', 'postmaster.pid')) : undefined,
    redisPid: pidFrom(path.join(dataDir, 'redis', 'redis.pid')),
  };
}
