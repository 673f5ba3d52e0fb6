// Readiness checks a role adds to its process, beyond Postgres and Redis: relay-ingest's "at least one
// relay connected". The api's /healthz/ready runs them when the roles share a process (`all`).

/** Resolves null when ready, or a short reason. */
export type ReadinessCheck = () => Promise<string | null>;

const checks = new Map<symbol, { name: string; check: ReadinessCheck }>();

/** Adds a check; the returned function removes it (on stop). */
export function addReadinessCheck(name: string, check: ReadinessCheck): () => void {
  const key = Symbol(name);
  checks.set(key, { name, check });
  return () => void checks.delete(key);
}

export async function runReadinessChecks(): Promise<[string, string | null][]> {
  return Promise.all(
    [...checks.values()].map(async ({ name, check }): Promise<[string, string | null]> => {
      try {
        return [name, await check()];
      } catch (err) {
        return [name, (err as Error).message || 'failed'];
      }
    }),
  );
}
