// Latency under a steady load rather than at saturation: requests offered at a constant overall rate
// (autocannon's overallRate over many connections, each far from busy), the farm's p99 at that rate.
// Each connection sends its next request only after its answer, so the rate holds while answers are
// faster than connections / rate (50 ms at 100 connections and 2,000/s); a slower farm shows as a
// lower achieved rate, which the result reports.
import { createRequire } from 'node:module';
import type { BenchUser } from './seed-users.js';

export interface OpenLoopResult {
  offeredRps: number;
  achievedRps: number;
  connections: number;
  durationS: number;
  requests: number;
  non2xx: number;
  errors: number;
  latencyMs: { p50: number; p90: number; p97_5: number; p99: number; p999: number; max: number };
}

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p97_5: number; p99: number; p99_9: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}

type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => unknown;

export async function runOpenLoop(opts: {
  url: string;
  users: readonly BenchUser[];
  rate: number;
  connections: number;
  durationS: number;
}): Promise<OpenLoopResult> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const tokens = opts.users.map((u) => u.accessToken);
  let counter = 0;
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: `${opts.url}/api/nostr`,
        connections: opts.connections,
        overallRate: opts.rate,
        duration: opts.durationS,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            setupRequest: (req: Record<string, unknown>) => {
              counter++;
              const body = JSON.stringify({
                method: 'sign_event',
                params: [
                  {
                    kind: 1,
                    content: `keyfarm open loop ${counter}`,
                    tags: [],
                    created_at: Math.floor(Date.now() / 1000),
                  },
                ],
              });
              return {
                ...req,
                body,
                headers: {
                  'content-type': 'application/json',
                  authorization: `Bearer ${tokens[counter % tokens.length]}`,
                },
              };
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
  return {
    offeredRps: opts.rate,
    achievedRps: Math.round(result.requests.total / result.duration),
    connections: opts.connections,
    durationS: result.duration,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p97_5: result.latency.p97_5,
      p99: result.latency.p99,
      p999: result.latency.p99_9,
      max: result.latency.max,
    },
  };
}
