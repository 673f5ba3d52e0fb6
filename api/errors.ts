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
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send({ error: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }));
}
