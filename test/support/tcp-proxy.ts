// A TCP proxy in front of a server (Redis here) whose link a test can cut: `cut()` drops every connection
// at once and refuses new ones, as if the server were gone for the processes behind the proxy, while the
// server itself keeps running for everyone else; `restore()` lets connections through again. `freeze()`
// holds every byte with the connections open, as a stopped (SIGSTOP) server would, until `thaw()`.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private down = false;

  constructor(private readonly target: { host: string; port: number }) {}

  /** `redis://127.0.0.1:<port>` style URL of the proxy for a URL of the target. */
  urlFor(targetUrl: string): string {
    const url = new URL(targetUrl);
    url.hostname = '127.0.0.1';
    url.port = String((this.server!.address() as AddressInfo).port);
    return url.toString();
  }

  async start(): Promise<this> {
    const server = createServer((client) => {
      if (this.down) return void client.destroy();
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return this;
  }

  /** Drops every live connection and refuses new ones until restore(). */
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.down = false;
  }

  /** Stops forwarding in both directions with every connection left open: a frozen server. */
  freeze(): void {
    for (const s of this.sockets) s.pause();
  }

  thaw(): void {
    for (const s of this.sockets) s.resume();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A proxy in front of the Redis at `redisUrl`, started. */
export function startRedisProxy(redisUrl: string): Promise<CuttableProxy> {
  const url = new URL(redisUrl);
  return new CuttableProxy({ host: url.hostname, port: Number(url.port || 6379) }).start();
}
