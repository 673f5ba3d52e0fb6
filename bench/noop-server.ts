// The floor of the HTTP layer: a Fastify route that answers POST /api/nostr at once with a fixed body,
// under the same wrk script as the farm. The farm's rate as a share of this one is what HTTP alone leaves.
// As a child process: `node dist/bench/noop-server.js` prints its port, then serves until killed.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { NODE_OPTIONS } from '../bin/node-options.js';

export interface NoopServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the no-op server in its own process (so the bench's own CPU is not in its way). */
export function startNoopServer(): Promise<NoopServer> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /NOOP_PORT (\d+)/.exec(out);
      if (!m) return;
      resolve({
        url: `http://127.0.0.1:${m[1]}`,
        pid: child.pid!,
        stop: () =>
          new Promise((done) => {
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`no-op server exited with ${code}`)));
  });
}

async function serve(): Promise<void> {
  const app = Fastify({ logger: false });
  app.post('/api/nostr', async () => ({ result: 'ok' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  console.log(`NOOP_PORT ${typeof address === 'object' && address ? address.port : 0}`);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void serve();
