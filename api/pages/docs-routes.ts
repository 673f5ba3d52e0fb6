// GET /docs: the API reference page, built once from the OpenAPI document on first request.
import type { FastifyPluginAsync } from 'fastify';
import { OPENAPI_PATH } from '../openapi.js';
import { sendPage, type PageOptions } from './layout.js';
import { apiReferencePage, type OpenApiDocument } from './views-docs.js';

export const DOCS_PATH = '/docs';

export const docsPages: FastifyPluginAsync = async (app) => {
  let page: PageOptions | undefined;
  app.get(DOCS_PATH, { schema: {} }, async (_request, reply) => {
    // The document is complete only once every route is registered, so it is read on first use.
    page ??= apiReferencePage(app.swagger() as unknown as OpenApiDocument, OPENAPI_PATH);
    return sendPage(reply, page);
  });
};
