// The HTTP face of a process without the api (`keyfarm workers`, `keyfarm relay-ingest`): probes and metrics,
// nothing else. In `all` the api serves these and runs the other roles' readiness checks itself.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registry } from '../shared/metrics.js';
import { METRICS_UNAUTHORIZED, metricsAllowed } from '../shared/metrics-token.js';
import { checksBody, type CheckResult } from '../shared/readiness.js';

export interface HealthServerOptions {
  host: string;
  port: number;
  version: string;
  ready(): Promise<CheckResult[]>;
  /** METRICS_TOKEN: /api/metrics then needs it as a bearer token (the probes stay open). */
  metricsToken?: string;
}

export async function startHealthServer(opts: HealthServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown, type = 'application/json', headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, ...(status === 503 ? { 'retry-after': '5' } : {}), ...headers });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(404, { error: 'not found' });
    if (path === '/health' || path === '/healthz/startup')
      return send(200, { status: 'healthy', version: opts.version });
    if (path === '/healthz/ready') {
      void opts.ready().then((results) => {
        const checks = checksBody(results);
        const failing = results.filter(([, e]) => e !== null).map(([n]) => n);
        if (failing.length) send(503, { status: 'unavailable', error: `not ready: ${failing.join(', ')}`, checks });
        else send(200, { status: 'ready', version: opts.version, checks });
      });
      return;
    }
    if (path === '/api/metrics') {
      if (!metricsAllowed(req.headers.authorization, opts.metricsToken)) {
        return send(
          METRICS_UNAUTHORIZED.status,
          METRICS_UNAUTHORIZED.body,
          'application/json',
          METRICS_UNAUTHORIZED.headers,
        );
      }
      void registry.metrics().then((text) => send(200, text, registry.contentType));
      return;
    }
    send(404, { error: `no route GET ${path}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
