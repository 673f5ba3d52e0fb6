// Every error body is {"error": "<message>"} (OAuth: {"error", "error_description"}); never a stack trace,
// never a 500 for bad input.
import type { FastifyError, FastifyInstance } from 'fastify';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** OAuth 2.0 error (RFC 6749 §5.2). */
export class OAuthError extends HttpError {
  constructor(statusCode: number, readonly code: string, readonly description: string) {
    super(statusCode, description);
    this.name = 'OAuthError';
  }
}

export const badRequest = (msg: string) => new HttpError(400, msg);
export const unauthorized = (msg = 'authentication required') => new HttpError(401, msg);
export const forbidden = (msg: string) => new HttpError(403, msg);
export const notFound = (msg: string) => new HttpError(404, msg);
export const unavailable = (msg: string, retryAfterSeconds = 1) =>
  new HttpError(503, msg, { 'retry-after': String(retryAfterSeconds) });

const PG_CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);
const PG_DOWN_MESSAGE = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection ended unexpectedly)/;
const REDIS_DOWN_MESSAGE = /^(Stream isn't writeable|Connection is closed|Reached the max retries per request limit|LOADING )/;

/**
 * The dependency an error says is down, or undefined. Such a request gets 503 with Retry-After (the
 * client may try again shortly), never a 500: PostgreSQL unreachable, restarting or out of connections
 * (SQLSTATE classes 08 and 57P, 53300), a statement past its timeout (57014), Redis unreachable (the fail-fast connections refuse at once),
 * the KeyManager unavailable.
 */
export function unavailableDependency(err: unknown): 'database' | 'redis' | 'key manager' | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === 'KeyManagerUnavailableError') return 'key manager';
  if (err.name === 'MaxRetriesPerRequestError' || REDIS_DOWN_MESSAGE.test(err.message)) return 'redis';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (PG_CONNECTION_CODES.has(code) || code.startsWith('08') || code.startsWith('57P') || code === '53300' || code === '57014')) {
    return 'database';
  }
  if (PG_DOWN_MESSAGE.test(err.message)) return 'database';
  return undefined;
}

/** Fastify's own client errors (bad JSON, wrong content type, too large) keep their 4xx status. */
function clientStatus(err: FastifyError): number | undefined {
  if (err.validation) return 400;
  const status = err.statusCode;
  return status !== undefined && status >= 400 && status < 500 ? status : undefined;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof OAuthError) {
      return reply.status(err.statusCode).send({ error: err.code, error_description: err.description });
    }
    if (err instanceof HttpError) {
      return reply.status(err.statusCode).headers(err.headers).send({ error: err.message });
    }
    const status = clientStatus(err);
    if (status !== undefined) {
      const message = err.validation ? `invalid request: ${err.message}` : err.message;
      return reply.status(status).send({ error: message });
    }
    const down = unavailableDependency(err);
    if (down) {
      request.log.warn({ err: err.message, dependency: down }, 'dependency unavailable');
      return reply.status(503).header('retry-after', '2').send({ error: `${down} unavailable` });
    }
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send({ error: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }));
}
