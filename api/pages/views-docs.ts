// /docs: the API reference, rendered on the server from the OpenAPI document (no script, so it reads the
// same offline and under the pages' strict CSP). Every value comes from our own route schemas, and is
// still escaped by the html tag.
import { html, type SafeHtml } from './html.js';
import type { PageOptions } from './layout.js';

/** The parts of a JSON Schema the reference shows. */
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  default?: unknown;
  description?: string;
  additionalProperties?: boolean | Schema;
}

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: Schema;
  description?: string;
}

interface MediaType {
  schema?: Schema;
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, MediaType>; required?: boolean };
  responses?: Record<string, { description?: string; content?: Record<string, MediaType> }>;
}

export interface OpenApiDocument {
  info: { title: string; version: string; description?: string };
  tags?: { name: string }[];
  paths?: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, { description?: string }> };
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

const anchor = (method: string, path: string) =>
  `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');

function literal(value: unknown): string {
  return JSON.stringify(value);
}

/** One line for a schema that is not an object: its type and constraints. */
function describe(s: Schema): string {
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    if (variants.every((v) => v.const !== undefined))
      return `one of ${variants.map((v) => literal(v.const)).join(', ')}`;
    return variants.map(describe).join(' or ');
  }
  if (s.const !== undefined) return literal(s.const);
  if (s.enum) return `one of ${s.enum.map(literal).join(', ')}`;
  const type = Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
  const parts = [type === 'array' ? `array of ${s.items ? describe(s.items) : 'any'}` : type];
  if (s.format) parts.push(`format ${s.format}`);
  if (s.minLength !== undefined || s.maxLength !== undefined)
    parts.push(`length ${s.minLength ?? 0}–${s.maxLength ?? '…'}`);
  if (s.minimum !== undefined || s.maximum !== undefined) parts.push(`from ${s.minimum ?? '…'} to ${s.maximum ?? '…'}`);
  if (s.maxItems !== undefined) parts.push(`at most ${s.maxItems} items`);
  if (s.pattern) parts.push(`matches ${s.pattern}`);
  if (s.default !== undefined) parts.push(`default ${literal(s.default)}`);
  return parts.join(', ');
}

interface Row {
  name: string;
  required: boolean;
  type: string;
}

/** An object's fields as rows, nested objects flattened to dotted names. */
function rows(s: Schema, prefix = ''): Row[] {
  const out: Row[] = [];
  for (const [name, field] of Object.entries(s.properties ?? {})) {
    const full = prefix + name;
    const required = s.required?.includes(name) ?? false;
    if (field.type === 'object' && field.properties) {
      out.push({ name: full, required, type: 'object' });
      out.push(...rows(field, `${full}.`));
    } else if (field.type === 'array' && field.items?.type === 'object' && field.items.properties) {
      out.push({ name: full, required, type: describe({ ...field, items: { type: 'object' } }) });
      out.push(...rows(field.items, `${full}[].`));
    } else {
      out.push({ name: full, required, type: describe(field) });
    }
  }
  return out;
}

function fieldTable(list: Row[]): SafeHtml {
  return html`<table class="fields">
    <thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Required</th></tr></thead>
    <tbody>${list.map((r) => html`<tr><td><code>${r.name}</code></td><td>${r.type}</td><td>${r.required ? 'yes' : 'no'}</td></tr>`)}</tbody>
  </table>`;
}

/** A body's schema: a table of fields for an object, one per variant for a union of objects. */
function schemaView(s: Schema | undefined): SafeHtml | string {
  if (!s) return '';
  const variants = s.anyOf ?? s.oneOf;
  if (variants?.some((v) => v.properties)) {
    return html`${variants.map((v, i) => html`<p class="small muted">Variant ${i + 1}</p>${schemaView(v)}`)}`;
  }
  if (s.type === 'object' && s.properties) return fieldTable(rows(s));
  if (s.type === 'array' && s.items?.properties)
    return html`<p class="small">An array of:</p>${fieldTable(rows(s.items))}`;
  return html`<p class="small"><code>${describe(s)}</code></p>`;
}

function contentView(content: Record<string, MediaType> | undefined): SafeHtml | string {
  if (!content) return '';
  return html`${Object.entries(content).map(([type, media]) => html`<p class="small muted">${type}</p>${schemaView(media.schema)}`)}`;
}

function credentials(op: Operation, doc: OpenApiDocument): SafeHtml | string {
  if (!op.security) return html`<p class="small">No credentials.</p>`;
  const schemes = doc.components?.securitySchemes ?? {};
  const options = op.security.map((req) => {
    const names = Object.keys(req);
    return names.length === 0 ? 'none' : names.map((n) => `${n} (${schemes[n]?.description ?? n})`).join(' and ');
  });
  return html`<p class="small">Credentials: ${options.join('; or ')}.</p>`;
}

function operationView(method: string, path: string, op: Operation, doc: OpenApiDocument): SafeHtml {
  const params = op.parameters ?? [];
  const body = op.requestBody?.content;
  return html`<section class="card operation" id="${anchor(method, path)}">
    <h3><span class="method">${method.toUpperCase()}</span> <code>${path}</code></h3>
    ${op.summary ? html`<p>${op.summary}</p>` : ''}
    ${credentials(op, doc)}
    ${
      params.length > 0
        ? html`<h4>Parameters</h4>${fieldTable(params.map((p) => ({ name: `${p.name} (${p.in})`, required: p.required ?? false, type: p.schema ? describe(p.schema) : 'any' })))}`
        : ''
    }
    ${body ? html`<h4>Request body</h4>${contentView(body)}` : ''}
    <h4>Responses</h4>
    ${Object.entries(op.responses ?? {}).map(([status, res]) => html`<p><strong>${status}</strong> ${res.description ?? ''}</p>${contentView(res.content)}`)}
  </section>`;
}

/** The operations of the document, grouped by their first tag in the document's tag order. */
function grouped(doc: OpenApiDocument): [string, [string, string, Operation][]][] {
  const groups = new Map<string, [string, string, Operation][]>((doc.tags ?? []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? 'Other';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag)!.push([method, path, op]);
    }
  }
  return [...groups].filter(([, ops]) => ops.length > 0);
}

export function apiReferencePage(doc: OpenApiDocument, documentPath: string): PageOptions {
  const groups = grouped(doc);
  return {
    title: 'API reference',
    body: html`<article class="api-reference">
      <h1>${doc.info.title} API <span class="muted small">${doc.info.version}</span></h1>
      ${doc.info.description ? html`<p>${doc.info.description}</p>` : ''}
      <p>The machine-readable description: <a href="${documentPath}"><code>${documentPath}</code></a> (OpenAPI 3.1).</p>
      <nav aria-label="Operations" class="card">
        ${groups.map(([tag, ops]) => html`<h2>${tag}</h2><ul>${ops.map(([method, path, op]) => html`<li><a href="#${anchor(method, path)}"><span class="method">${method.toUpperCase()}</span> <code>${path}</code></a> ${op.summary ?? ''}</li>`)}</ul>`)}
      </nav>
      ${groups.map(([tag, ops]) => html`<h2>${tag}</h2>${ops.map(([method, path, op]) => operationView(method, path, op, doc))}`)}
    </article>`,
  };
}
