// What the pages' form handlers share: telling a user's mistake (shown on the form) from a fault (500).
import type { FastifyReply } from 'fastify';
import { HttpError } from '../errors.js';

/** A 4xx HttpError to show on the form, with its headers (Retry-After) put on the reply; anything else is rethrown. */
export function formError(err: unknown, reply: FastifyReply): HttpError {
  if (!(err instanceof HttpError) || err.statusCode >= 500) throw err;
  reply.headers(err.headers);
  return err;
}
