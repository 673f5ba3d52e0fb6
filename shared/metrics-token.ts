// METRICS_TOKEN: when set, /api/metrics answers only a request with `Authorization: Bearer <token>`,
// wherever it is served (the api's port, and the health port of a workers- or relay-ingest-only process):
// the metrics name queues, shards and rates an outsider has no business reading. The probes stay open.
import { createHash, timingSafeEqual } from 'node:crypto';

export const METRICS_UNAUTHORIZED = {
  status: 401,
  headers: { 'www-authenticate': 'Bearer realm="keyfarm-metrics"', 'cache-control': 'no-store' },
  body: { error: 'metrics need Authorization: Bearer <METRICS_TOKEN>' },
} as const;

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The token of an `Authorization: Bearer` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

/** True when no token is configured, or the header carries it; constant time whatever the lengths (both sides are hashed). */
export function metricsAllowed(authorization: string | string[] | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const given = bearerToken(authorization);
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}
