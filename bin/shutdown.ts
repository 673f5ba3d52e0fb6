// Graceful shutdown of a role process on SIGTERM (or SIGINT): /healthz/ready turns 503 at once, the roles
// stop taking work and finish what they hold (in-flight HTTP up to SHUTDOWN_HTTP_TIMEOUT_MS, running jobs
// up to SHUTDOWN_JOBS_TIMEOUT_MS), relays and pools close, and the process exits 0. A second signal, or a
// stop that outlives all of its allowances, forces exit 1 with a line saying so.
import type { Config } from '../shared/config.js';
import { markShuttingDown } from '../shared/readiness.js';
import type { Runtime } from './runtime.js';

/** Closing connections and pools once the work is done. */
const CLOSE_ALLOWANCE_MS = 5000;
const POOL_END_MS = 2000;

/** The longest a graceful stop may take before exit is forced. */
export function shutdownDeadlineMs(
  config: Pick<Config, 'SHUTDOWN_DELAY_MS' | 'SHUTDOWN_HTTP_TIMEOUT_MS' | 'SHUTDOWN_JOBS_TIMEOUT_MS'>,
): number {
  return (
    config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_HTTP_TIMEOUT_MS + config.SHUTDOWN_JOBS_TIMEOUT_MS + CLOSE_ALLOWANCE_MS
  );
}

/** Resolves with the promise's outcome, or after ms (false); never rejects. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return done;
}

export function stopOnSignals(rt: Runtime, stop: () => Promise<void>): void {
  const { logger } = rt;
  let stopping = false;
  const exit = (code: number) => {
    logger.flush();
    process.exit(code);
  };
  const onSignal = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.error({ signal }, `second ${signal} during shutdown: forcing exit`);
      return exit(1);
    }
    stopping = true;
    markShuttingDown();
    const deadlineMs = shutdownDeadlineMs(rt.config);
    logger.info({ signal, deadlineMs }, 'shutting down: finishing in-flight work');
    setTimeout(() => {
      logger.error({ deadlineMs }, `shutdown did not finish within ${deadlineMs} ms: forcing exit`);
      exit(1);
    }, deadlineMs).unref();
    try {
      await stop();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'error while stopping');
    }
    // A query still running (a job left behind) holds its client; exiting drops it anyway.
    if (!(await within(rt.db.end(), POOL_END_MS))) logger.warn('database pool still busy at exit');
    await rt
      .stopServices()
      .catch((err: Error) => logger.warn({ err: err.message }, 'stopping embedded services failed'));
    logger.info('stopped');
    exit(0);
  };
  process.on('SIGTERM', () => void onSignal('SIGTERM'));
  process.on('SIGINT', () => void onSignal('SIGINT'));
}
