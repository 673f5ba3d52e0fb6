// What /healthz/ready reports beyond Postgres and Redis: checks a role adds to its process (relay-ingest's
// service relays, reported as degraded beside the api; the api's /healthz/ready runs them when the roles
// share a process), and
// "shutting down" from the moment SIGTERM arrives, so load balancers stop sending before the port closes.

/** Resolves null when ready, a short reason when not, or `{ degraded }` when ready but something is down. */
export type ReadinessCheck = () => Promise<string | null | { degraded: string }>;

/** `note` is what the body shows for a passing check instead of 'ok' (e.g. 'degraded: 0/1 connected'). */
export type CheckResult = [name: string, failure: string | null, note?: string];

/** The `checks` object of a readiness body: each check's failure, note or 'ok'. */
export function checksBody(results: CheckResult[]): Record<string, string> {
  return Object.fromEntries(results.map(([name, failure, note]) => [name, failure ?? note ?? 'ok']));
}

const checks = new Map<symbol, { name: string; check: ReadinessCheck }>();
let shuttingDown = false;

/** Adds a check; the returned function removes it (on stop). */
export function addReadinessCheck(name: string, check: ReadinessCheck): () => void {
  const key = Symbol(name);
  checks.set(key, { name, check });
  return () => void checks.delete(key);
}

/** From now on this process reports not ready (graceful shutdown). */
export function markShuttingDown(): void {
  shuttingDown = true;
}

/** [['shutdown', 'shutting down']] once SIGTERM has arrived, else []. */
export function shutdownCheck(): CheckResult[] {
  return shuttingDown ? [['shutdown', 'shutting down']] : [];
}

const PROBE_TIMEOUT_MS = 1000;

/** Runs one probe: [name, null] when it resolves within a second, else [name, reason]. */
export async function probe(
  name: string,
  run: () => Promise<unknown>,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
  });
  try {
    await Promise.race([run(), timeout]);
    return [name, null];
  } catch (err) {
    return [name, (err as Error).message || 'failed'];
  } finally {
    clearTimeout(timer);
  }
}

export async function runReadinessChecks(): Promise<CheckResult[]> {
  const results = await Promise.all(
    [...checks.values()].map(async ({ name, check }): Promise<CheckResult> => {
      try {
        const outcome = await check();
        return outcome !== null && typeof outcome === 'object' ? [name, null, outcome.degraded] : [name, outcome];
      } catch (err) {
        return [name, (err as Error).message || 'failed'];
      }
    }),
  );
  return [...results, ...shutdownCheck()];
}
