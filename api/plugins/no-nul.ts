// PostgreSQL text cannot hold NUL (U+0000): a value carrying one would fail deep inside a query (SQLSTATE
// 22021), perhaps after other writes. So it is refused at the door, in every body field (JSON or form) and
// route parameter, before validation and before any handler runs. Query strings are left to their schemas:
// none reaches a text column (a hostile `next` is turned into /account, not refused), and a NUL that still
// reached PostgreSQL would be a 400 by the error handlers.
import type { FastifyInstance } from 'fastify';
import { REFUSED_CHARACTER_MESSAGE, badRequest } from '../errors.js';

/** True when a string anywhere in the value (objects and arrays, walked without recursion) holds a NUL. */
export function containsNul(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next === 'string') {
      if (next.includes('\u0000')) return true;
    } else if (next !== null && typeof next === 'object') {
      for (const [key, inner] of Object.entries(next)) {
        if (key.includes('\u0000')) return true;
        pending.push(inner);
      }
    }
  }
  return false;
}

/** `exempt`: routes whose values never reach a PostgreSQL text column (the RPC door signs what it is given). */
export function installNulGuard(app: FastifyInstance, exempt: ReadonlySet<string>): void {
  app.addHook('preValidation', (request, _reply, done) => {
    if (exempt.has(request.routeOptions.url ?? '')) return done();
    if (containsNul(request.params) || containsNul(request.body)) return done(badRequest(REFUSED_CHARACTER_MESSAGE));
    done();
  });
}
