// The browser side of the api: assets, log in / register, mailed links, the account pages, the OAuth
// consent page and the API reference.
// Errors on these routes answer with an HTML page rather than JSON.
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import type { ApiContext } from '../context.js';
import {
  DEPENDENCY_RETRY_AFTER_SECONDS,
  type DependencyState,
  HttpError,
  REFUSED_CHARACTER_MESSAGE,
  dependencyDown,
  isRefusedCharacter,
} from '../errors.js';
import { accountPages } from './account-routes.js';
import { approvalPages } from './approval-routes.js';
import { policyPages } from './policy-routes.js';
import { assetRoutes } from './assets.js';
import { authPages } from './auth-routes.js';
import { consentPages } from './consent-routes.js';
import { docsPages } from './docs-routes.js';
import { emailPages } from './email-routes.js';
import { sendPage } from './layout.js';
import { teamPages } from './team-routes.js';
import { errorPage } from './views-auth.js';

const CSRF_CODES = new Set(['FST_CSRF_MISSING_SECRET', 'FST_CSRF_INVALID_TOKEN']);

interface ErrorView {
  status: number;
  title: string;
  message: string;
}

function describeError(err: FastifyError): ErrorView | undefined {
  if (CSRF_CODES.has(err.code)) {
    return {
      status: 403,
      title: 'This form has expired',
      message: 'The form was old or did not come from this site. Go back, reload the page and try again.',
    };
  }
  if (err instanceof HttpError) return { status: err.statusCode, title: 'That did not work', message: err.message };
  if (err.validation)
    return { status: 400, title: 'That did not work', message: 'Some fields are missing or too long.' };
  if (isRefusedCharacter(err)) return { status: 400, title: 'That did not work', message: REFUSED_CHARACTER_MESSAGE };
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return { status, title: 'That did not work', message: err.message };
  return undefined;
}

const INTERNAL_ERROR: ErrorView = {
  status: 500,
  title: 'Something went wrong',
  message: 'Keyfarm could not do that just now. Please try again.',
};

const BUSY: ErrorView = {
  status: 503,
  title: 'Keyfarm is busy',
  message: 'Keyfarm cannot do that just now. Please try again in a moment.',
};

export interface WebPagesOptions {
  ctx: ApiContext;
  /** Asked, as by the JSON error handler, when an error does not say by itself which dependency is down. */
  dependencies?: DependencyState;
}

export const webPages: FastifyPluginAsync<WebPagesOptions> = async (app, { ctx, dependencies }) => {
  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    if (err instanceof HttpError) reply.headers(err.headers);
    const known = describeError(err);
    if (known) {
      if (known.status >= 500) request.log.error({ err }, 'page error');
      return sendPage(reply, errorPage(known.title, known.message), known.status);
    }
    const down = await dependencyDown(err, dependencies);
    if (down) {
      request.log.warn({ err: err.message, dependency: down }, 'dependency unavailable');
      reply.header('retry-after', String(DEPENDENCY_RETRY_AFTER_SECONDS));
      return sendPage(reply, errorPage(BUSY.title, BUSY.message), BUSY.status);
    }
    request.log.error({ err }, 'page error');
    return sendPage(reply, errorPage(INTERNAL_ERROR.title, INTERNAL_ERROR.message), INTERNAL_ERROR.status);
  });
  await app.register(assetRoutes);
  await app.register(authPages, { ctx });
  await app.register(emailPages, { ctx });
  await app.register(accountPages, { ctx });
  await app.register(approvalPages, { ctx });
  await app.register(policyPages, { ctx });
  await app.register(teamPages, { ctx });
  await app.register(consentPages, { ctx });
  await app.register(docsPages);
};
