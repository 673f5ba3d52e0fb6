// The pages' stylesheet and script, served from memory with a content hash in their URLs.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { CLIENT_SCRIPT } from './client-script.js';

const CSS = readFileSync(new URL('./assets/app.css', import.meta.url), 'utf8');
const version = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

export const ASSET_URLS = {
  css: `/assets/app.css?v=${version(CSS)}`,
  js: `/assets/app.js?v=${version(CLIENT_SCRIPT)}`,
};

export async function assetRoutes(app: FastifyInstance): Promise<void> {
  const serve = (body: string, type: string) => async (_request: unknown, reply: import('fastify').FastifyReply) =>
    reply.header('content-type', type).header('cache-control', 'public, max-age=86400').send(body);
  app.get('/assets/app.css', serve(CSS, 'text/css; charset=utf-8'));
  app.get('/assets/app.js', serve(CLIENT_SCRIPT, 'text/javascript; charset=utf-8'));
}
