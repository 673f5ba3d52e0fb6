// A closed-loop flood of POST /api/nostr sign_event calls from one token, run as its own process so the
// load does not share an event loop with the farm under test. Each of FLOOD_CONNECTIONS loops sends a
// call, waits for its answer, and (FLOOD_HONOUR_RETRY_AFTER=1) sleeps a 503's Retry-After before the next.
// Settings come from the environment (the token never goes on a command line); prints one JSON line:
// every answer's status, reason, Retry-After and latency in ms.
import { Agent, request } from 'node:http';

export interface FloodAnswer {
  status: number;
  reason?: string;
  retryable?: boolean;
  retryAfter?: string;
  ms: number;
  /** When it was sent, ms after the flood began. */
  at: number;
}

export interface FloodReport {
  answers: FloodAnswer[];
  errors: number;
}

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const url = new URL('/api/nostr', env('FLOOD_URL'));
  const token = env('FLOOD_TOKEN');
  const connections = Number(env('FLOOD_CONNECTIONS'));
  const seconds = Number(env('FLOOD_SECONDS'));
  const honour = process.env.FLOOD_HONOUR_RETRY_AFTER === '1';
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const report: FloodReport = { answers: [], errors: 0 };
  const began = performance.now();
  const end = began + seconds * 1000;
  let seq = 0;

  const once = () =>
    new Promise<FloodAnswer>((resolve, reject) => {
      const body = JSON.stringify({
        method: 'sign_event',
        params: [{ kind: 1, content: `flood ${process.pid} ${++seq}`, tags: [], created_at: 1_700_000_000 }],
      });
      const started = performance.now();
      const req = request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: `Bearer ${token}`,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            const ms = performance.now() - started;
            let parsed: { reason?: string; retryable?: boolean } = {};
            try {
              parsed = JSON.parse(text) as typeof parsed;
            } catch {}
            const retryAfter = res.headers['retry-after'];
            resolve({
              status: res.statusCode ?? 0,
              reason: parsed.reason,
              retryable: parsed.retryable,
              retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
              ms,
              at: started - began,
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const loop = async () => {
    while (performance.now() < end) {
      try {
        const a = await once();
        report.answers.push(a);
        if (honour && a.status === 503) await new Promise((r) => setTimeout(r, Number(a.retryAfter ?? 1) * 1000));
      } catch {
        report.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
