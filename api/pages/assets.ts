// The pages' stylesheet and script, served from memory with a content hash in their URLs.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CLIENT_SCRIPT } from './client-script.js';

const CSS = readFileSync(new URL('./assets/app.css', import.meta.url), 'utf8');
const version = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

export const ASSET_URLS = {
  css: `/assets/app.css?v=${version(CSS)}`,
  js: `/assets/app.js?v=${version(CLIENT_SCRIPT)}`,
};

const ASSETS: [string, string, string][] = [
  ['/assets/app.css', CSS, 'text/css; charset=utf-8'],
  ['/assets/app.js', CLIENT_SCRIPT, 'text/javascript; charset=utf-8'],
];

export const assetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const [url, body, type] of ASSETS) {
    app.get(
      url,
      { schema: { querystring: Type.Object({ v: Type.Optional(Type.String({ maxLength: 32 })) }) } },
      async (_request, reply) =>
        reply.header('content-type', type).header('cache-control', 'public, max-age=86400').send(body),
    );
  }
};
