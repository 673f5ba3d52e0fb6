// Choosing a loopback port for an embedded server. Each data dir prefers its own port (a hash of its
// path), so two projects on one machine rarely collide and a restart usually gets the same URL back.
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';

/** Below Linux's ephemeral range (32768+), so outgoing connections do not take our ports meanwhile. */
const FIRST = 20_000;
const SPAN = 12_000;

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function osAssignedPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export function preferredPort(seed: string): number {
  return FIRST + (createHash('sha256').update(seed).digest().readUInt32BE(0) % SPAN);
}

/** `remembered` when still free, else the seed's preferred port or one of its next neighbours, else any free port. */
export async function choosePort(seed: string, remembered?: number, avoid: number[] = []): Promise<number> {
  if (remembered !== undefined && !avoid.includes(remembered) && (await isPortFree(remembered))) return remembered;
  const start = preferredPort(seed);
  for (let i = 0; i < 20; i++) {
    const port = FIRST + ((start - FIRST + i) % SPAN);
    if (!avoid.includes(port) && port !== remembered && (await isPortFree(port))) return port;
  }
  return osAssignedPort();
}
