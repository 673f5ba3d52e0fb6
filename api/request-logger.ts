// Fastify gives every request a child logger carrying its trace id. Making one costs about 2 µs (pino
// serializes and redacts the bindings), and most requests log nothing: an RPC call that succeeds writes
// no line. This logger makes the child only when the request first logs, so the line is the same.
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString, LogFn } from 'pino';
import type { FastifyBaseLogger } from 'fastify';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Forwards a level method to the child, made on first use. */
const forward = (level: Level): LogFn =>
  function (this: RequestLogger, ...args: unknown[]) {
    const child = this.real();
    (child[level] as (...a: unknown[]) => void).apply(child, args);
  } as LogFn;

export class RequestLogger implements FastifyBaseLogger {
  // The level methods live on the prototype (below): one set for every request.
  declare fatal: LogFn;
  declare error: LogFn;
  declare warn: LogFn;
  declare info: LogFn;
  declare debug: LogFn;
  declare trace: LogFn;
  declare silent: LogFn;
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  /** The request's own pino child, made once. */
  real(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  get level(): LevelWithSilentOrString {
    return this.real().level;
  }

  set level(level: LevelWithSilentOrString) {
    this.real().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }
}

for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const)
  RequestLogger.prototype[level] = forward(level);

/** Fastify's childLoggerFactory: a RequestLogger in place of an eager child. */
export function lazyChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return new RequestLogger(logger, bindings, options);
}
