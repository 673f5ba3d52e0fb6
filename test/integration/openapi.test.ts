// The OpenAPI document at /api/openapi.json: valid OpenAPI 3.1, built from the routes' own schemas, and
// complete: every route Fastify registers (seen by an onRoute hook) is in it, except the web pages for
// people, their assets and the operators' queue dashboard. /docs renders it under the pages' CSP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { RouteOptions } from 'fastify';
import { startApi, type RunningApi } from '../../api/index.js';
import { VERSION } from '../../bin/runtime.js';
import { createKeyManager } from '../../shared/custody/index.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { loadPayloadSealer } from '../../shared/farm/payload-key.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

/** Browser pages, their assets, the API reference page and Bull Board: not API operations. */
const NOT_API = [
  /^\/$/,
  /^\/login$/,
  /^\/register$/,
  /^\/logout$/,
  /^\/forgot-password$/,
  /^\/reset-password$/,
  /^\/verify-email$/,
  /^\/account(\/|$)/,
  /^\/approve\/:id$/,
  /^\/teams(\/|$)/,
  /^\/oauth\/consent$/,
  /^\/assets\//,
  /^\/docs$/,
  /^\/admin\/queues(\/|$)/,
];
/** Fastify's automatic HEAD twins of GET routes and the CORS preflight catch-all are not operations. */
const IMPLICIT_METHODS = new Set(['HEAD', 'OPTIONS']);
/** A Fastify route's path as OpenAPI writes it: `:id` becomes `{id}`. */
const documentedPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
const isApiPath = (url: string) =>
  url.startsWith('/api/') || url === '/health' || url.startsWith('/healthz/') || url.startsWith('/.well-known/');

/** A schema as @fastify/swagger writes it: `const: x` becomes the equivalent `enum: [x]`. */
function asDocumented(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(asDocumented);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'const') out.enum = [value];
    else out[key] = asDocumented(value);
  }
  return out;
}

interface Doc {
  openapi: string;
  info: { version: string };
  paths: Record<
    string,
    Record<
      string,
      {
        summary?: string;
        requestBody?: { content: Record<string, { schema: unknown }> };
        parameters?: { name: string; in: string }[];
      }
    >
  >;
}

describe('OpenAPI document', () => {
  let farm: TestFarm;
  let keyManager: KeyManager;
  let api: RunningApi;
  const routes: RouteOptions[] = [];
  let doc: Doc;

  before(async () => {
    // The queue dashboard on, so its routes are registered too and must be left out of the document.
    const adminPassword = recordSecret(`admin-${Date.now()}-openapi-password`);
    farm = await startTestFarm('openapi', { ADMIN_PASSWORD: adminPassword }, { api: false, workers: false });
    keyManager = await createKeyManager(farm.config);
    const payloadSealer = await loadPayloadSealer(farm.rt.db, keyManager);
    api = await startApi({
      config: farm.config,
      logger: farm.rt.logger,
      db: farm.rt.db,
      redisUrl: farm.rt.redisUrl,
      keyManager,
      payloadSealer,
      version: VERSION,
      hooks: { onRoute: (route) => routes.push(route) },
    });
    const res = await fetch(`${api.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    doc = (await res.json()) as Doc;
  });
  after(async () => {
    await api?.close();
    await keyManager?.close();
    await farm?.stop();
  });

  const operations = () =>
    routes.flatMap((r) =>
      (Array.isArray(r.method) ? r.method : [r.method])
        .filter((m) => !IMPLICIT_METHODS.has(m))
        .map((method) => ({ method, url: r.url, route: r })),
    );

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.version, VERSION);
    // Tools on other origins may read it (no cookie is involved).
    const cross = await fetch(`${api.url}/api/openapi.json`, { headers: { origin: 'https://editor.example' } });
    assert.equal(cross.headers.get('access-control-allow-origin'), '*');
    // validate() dereferences in place: give it a copy.
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('holds every API route Fastify registered, with a summary, and nothing else', () => {
    const seen = operations();
    assert.ok(seen.length > 20, `routes seen by onRoute: ${seen.length}`);
    const documented = new Set<string>();
    for (const { method, url } of seen) {
      const op = doc.paths[documentedPath(url)]?.[method.toLowerCase()];
      if (isApiPath(url)) {
        assert.ok(op, `${method} ${url} is registered but not in the document`);
        assert.ok(op.summary, `${method} ${url} has no summary`);
        documented.add(`${method} ${documentedPath(url)}`);
      } else {
        assert.ok(
          NOT_API.some((re) => re.test(url)),
          `${method} ${url} is neither in the document nor a known page`,
        );
        assert.equal(op, undefined, `${method} ${url} is a page, not an API operation`);
      }
    }
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        assert.ok(
          documented.has(`${method.toUpperCase()} ${path}`),
          `${method} ${path} is in the document but no such route is registered`,
        );
      }
    }
  });

  it("describes each route's input by the schema the route validates with", () => {
    let bodies = 0;
    for (const { method, url, route } of operations()) {
      const op = doc.paths[documentedPath(url)]?.[method.toLowerCase()];
      const schema = route.schema as
        | { body?: unknown; querystring?: { properties?: Record<string, unknown> } }
        | undefined;
      if (!op || !schema) continue;
      if (schema.body) {
        bodies++;
        assert.deepEqual(
          op.requestBody?.content['application/json']?.schema,
          asDocumented(JSON.parse(JSON.stringify(schema.body))),
          `${method} ${url} body`,
        );
      }
      for (const name of Object.keys(schema.querystring?.properties ?? {})) {
        assert.ok(
          op.parameters?.some((p) => p.in === 'query' && p.name === name),
          `${method} ${url} query parameter ${name}`,
        );
      }
    }
    assert.ok(bodies >= 8, `request bodies compared: ${bodies}`);
  });

  it('renders /docs from the document: every operation, under the strict page CSP, with no script', async () => {
    const res = await fetch(`${api.url}/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'"])
      assert.ok(csp.includes(directive), directive);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const page = await res.text();
    assert.doesNotMatch(page, /<script(?![^>]*\bsrc="\/assets\/app\.js)/, 'no inline script');
    assert.doesNotMatch(page, /\sstyle=/, 'no inline style');
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        const escaped = path.replace(/&/g, '&amp;');
        assert.ok(
          page.includes(`<span class="method">${method.toUpperCase()}</span> <code>${escaped}</code>`),
          `${method} ${path} on /docs`,
        );
      }
    }
  });
});
