// Every error body is {"error": "<message>"} (OAuth: {"error", "error_description"}); never a stack trace,
// never a 500 for bad input.
import type { FastifyError, FastifyInstance } from 'fastify';
import pg from 'pg';
import { KeyManagerUnavailableError } from '../shared/custody/key-manager.js';
import { redisReplyCode } from '../shared/redis.js';

/**
 * What a refusal is about, for code that must tell refusals apart (the pages put each on its form field).
 * Internal: the response body stays `{"error": message}`.
 */
export type ErrorReason =
  | 'weak_password'
  | 'invalid_nsec'
  | 'email_taken'
  | 'key_taken'
  | 'same_email'
  | 'same_password'
  | 'unknown_policy'
  | 'bad_relay'
  | 'no_relay'
  | 'invalid_reset_link';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly reason?: ErrorReason,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** OAuth 2.0 error (RFC 6749 §5.2). */
export class OAuthError extends HttpError {
  constructor(
    statusCode: number,
    readonly code: string,
    readonly description: string,
  ) {
    super(statusCode, description);
    this.name = 'OAuthError';
  }
}

export const badRequest = (msg: string, reason?: ErrorReason) => new HttpError(400, msg, {}, reason);
export const unauthorized = (msg = 'authentication required') => new HttpError(401, msg);
export const forbidden = (msg: string) => new HttpError(403, msg);
export const notFound = (msg: string) => new HttpError(404, msg);
export const conflict = (msg: string, reason?: ErrorReason) => new HttpError(409, msg, {}, reason);
export const unavailable = (msg: string, retryAfterSeconds = 1) =>
  new HttpError(503, msg, { 'retry-after': String(retryAfterSeconds) });

export type Dependency = 'database' | 'redis' | 'key manager';

/** Node's system error codes for a peer that cannot be reached (pg passes them through on connect). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** SQLSTATE 22021: a text value PostgreSQL cannot store (NUL, bad UTF-8). */
const SQLSTATE_BAD_CHARACTER = '22021';

/**
 * The server is there but cannot serve: connection exceptions (class 08), shutting down or restarting
 * (57P01-57P05), too many connections (53300), a statement past its timeout (57014).
 */
function isUnavailableSqlState(code: string): boolean {
  return code.startsWith('08') || code.startsWith('57P') || code === '53300' || code === '57014';
}

/**
 * pg's and pg-pool's own errors for a connection that could not be had in time or was lost: plain Errors
 * with no code, so their fixed texts are what tells them apart. test/unit/database-unavailable.test.ts
 * makes each one with real pg, so an upgrade that rewords one fails there.
 */
const PG_CONNECTION_FAILURES = new Set([
  'timeout exceeded when trying to connect', // no pooled connection came free within the acquire timeout
  'Connection terminated due to connection timeout', // a new connection did not finish its startup in time
  'timeout expired', // the same, from a client connected outside a pool
  'Query read timeout', // no answer within query_timeout (the server is frozen or the network is gone)
  'Connection terminated unexpectedly',
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
]);
/** How deep a chain of `cause`s is followed (wrappers add one level each). */
const MAX_CAUSE_DEPTH = 4;
/** Seconds a client is asked to wait before retrying a request refused for a dependency. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 2;

/**
 * The dependency an error says is down, or undefined, from the error's class, code or (for pg's own
 * connection errors) text, following its causes. Such a request gets 503 with Retry-After (the client may
 * try again shortly), never a 500.
 */
export function unavailableDependency(err: unknown): Dependency | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current instanceof Error; depth++) {
    const found = unavailableByItself(current);
    if (found) return found;
    current = current.cause;
  }
  return undefined;
}

function unavailableByItself(err: Error): Dependency | undefined {
  if (err instanceof KeyManagerUnavailableError) return 'key manager';
  // ioredis does not export this class; its name is set by the class itself.
  if (err.name === 'MaxRetriesPerRequestError') return 'redis';
  if (redisReplyCode(err) === 'LOADING') return 'redis';
  const code = (err as { code?: unknown }).code;
  if (err instanceof pg.DatabaseError)
    return typeof code === 'string' && isUnavailableSqlState(code) ? 'database' : undefined;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'database';
  if (PG_CONNECTION_FAILURES.has(err.message)) return 'database';
  return undefined;
}

/**
 * What the handlers ask when an error carries no class, code or known text that says what failed (ioredis
 * raises a plain Error when its connection breaks). Then the connections' state tells whether a dependency
 * is down.
 */
export interface DependencyState {
  redisUp(): boolean;
  databaseUp(): Promise<boolean>;
}

/**
 * The one classifier both error handlers (JSON and pages) use: the dependency whose failure an error is,
 * whose request then answers 503 `<dependency> unavailable` with Retry-After; undefined means a 500.
 */
export async function dependencyDown(
  err: unknown,
  state: DependencyState | undefined,
): Promise<Dependency | undefined> {
  const known = unavailableDependency(err);
  if (known || !state || err instanceof pg.DatabaseError) return known;
  if (!state.redisUp()) return 'redis';
  if (!(await state.databaseUp())) return 'database';
  return undefined;
}

/** PostgreSQL refused a character in a value the client sent (a NUL that got past the door): bad input. */
export function isRefusedCharacter(err: unknown): boolean {
  return err instanceof pg.DatabaseError && err.code === SQLSTATE_BAD_CHARACTER;
}

export const REFUSED_CHARACTER_MESSAGE = 'text must not contain NUL characters';

/** Fastify's own client errors (bad JSON, wrong content type, too large) keep their 4xx status. */
function clientStatus(err: FastifyError): number | undefined {
  if (err.validation) return 400;
  const status = err.statusCode;
  return status !== undefined && status >= 400 && status < 500 ? status : undefined;
}

export function installErrorHandler(app: FastifyInstance, state?: DependencyState): void {
  app.setErrorHandler(async (err: FastifyError, request, reply) => {
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
    if (isRefusedCharacter(err)) return reply.status(400).send({ error: REFUSED_CHARACTER_MESSAGE });
    const down = await dependencyDown(err, state);
    if (down) {
      request.log.warn({ err: err.message, dependency: down }, 'dependency unavailable');
      return reply
        .status(503)
        .header('retry-after', String(DEPENDENCY_RETRY_AFTER_SECONDS))
        .send({ error: `${down} unavailable` });
    }
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send({ error: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
}
