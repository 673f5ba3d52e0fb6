// Inputs for one route: values drawn from the route's own JSON schema, mixed at every level with hostile
// ones (huge and odd strings, NUL, lone surrogates, prototype keys, wrong types, deep nesting), encoded as
// JSON, as a form, as a query string, or as raw bytes with bad percent-encoding, under hostile headers.
import fc from 'fast-check';
import type { FuzzRoute } from './route-table.js';

type Schema = Record<string, unknown>;
const HOSTILE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '',
  '\u0000',
  'a.b',
  '$where',
  '__defineGetter__',
];
const ODD_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  '\ufeff',
  '\u202e',
  '\u2028',
  '💥',
  'é',
  'Ā',
  'ﬀ',
  'İ',
  '\r\n',
  '\r\nSet-Cookie: x=1',
  'null',
  'undefined',
  'NaN',
  '-0',
  '1e999',
  '0x10',
  '[]',
  '{}',
  '{"a":',
  '"',
  "'",
  '`',
  '\\',
  '%',
  '%00',
  '%zz',
  '../../etc/passwd',
  '<script>',
  'javascript:alert(1)',
  '//evil.example',
  '/\\evil.example',
  'https://evil.example;sandbox',
  'nsec1',
  'npub1',
  '0'.repeat(64),
  'f'.repeat(64),
  'F'.repeat(64),
  'policy:full',
  'full',
  'Bearer x',
  'wss://127.0.0.1:9/',
  'ws://[::1]:1/',
  'nostrconnect://',
  '00000000-0000-0000-0000-000000000000',
];
const PEER = `${'a'.repeat(63)}b`;
/** Values that get past a field's first check, by field name, so inputs reach the code behind it. */
const HINTS: Record<string, unknown[]> = {
  redirect_uri: ['https://app.example/cb', 'http://127.0.0.1:9/cb', 'https://app.example:8443/cb?x=%C4%80'],
  client_id: ['Fuzz App', 'a'],
  scope: ['policy:full', 'policy:readonly', 'full'],
  policy_slug: ['full', 'readonly', 'social'],
  code_challenge: ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'],
  code_challenge_method: ['S256'],
  response_type: ['code'],
  approved: [true, false, 'true'],
  grant_type: ['authorization_code', 'refresh_token'],
  next: ['/account', '/%C4%80', '/api/oauth/authorize?client_id=x'],
  uri: [
    `nostrconnect://${PEER}?relay=wss%3A%2F%2Frelay.example&secret=s3cr3t`,
    `nostrconnect://${PEER}?relay=ws://127.0.0.1:9&secret=x&name=%C4%80`,
  ],
  relays: [['wss://relay.example'], 'wss://relay.example\nwss://b.example'],
  params: [
    [],
    [{ kind: 1, content: 'fuzz', tags: [['t', 'x']], created_at: 1700000000 }],
    [PEER, 'hello'],
    [PEER, 'not a ciphertext'],
  ],
  method: ['ping', 'get_public_key', 'sign_event', 'nip44_encrypt', 'nip04_decrypt'],
  expires_at: [4102444800, '2099-01-01T00:00:00Z', null],
};
const BAD_PERCENT = [
  '%',
  '%%',
  '%zz',
  '%C0%80',
  '%ED%A0%80',
  '%FF%FE',
  '%E2%82',
  '%00',
  '%0D%0A',
  '%2F%2E%2E',
  '+%2B+',
  '%u0100',
  '%C4%80',
];

const deep = (depth: number, leaf: unknown, asObject: boolean): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = asObject ? { a: value } : [value];
  return value;
};

/** An object with an own property named key, even `__proto__`. */
function withKey(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

const oddString = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 4 }),
  fc.integer({ min: 1, max: 8 }).chain((n) => fc.constantFrom(...BAD_PERCENT).map((p) => p.repeat(n))),
);

const hugeString = fc.oneof(
  fc.integer({ min: 200, max: 5000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 5000, max: 300_000 }).map((n) => 'é'.repeat(n)),
  fc.constantFrom(1_100_000).map((n) => 'A'.repeat(n)), // past the 1 MiB body limit
);

/** A value of any JSON type, or one no schema expects. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: oddString },
  { weight: 1, arbitrary: hugeString },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      null,
      true,
      false,
      0,
      -1,
      1.5,
      -0,
      2 ** 53,
      -(2 ** 63),
      1e308,
      Number.MAX_VALUE,
      4294967296,
    ),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 20, max: 3000 }), fc.boolean()).map(([d, o]) => deep(d, 'x', o)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...HOSTILE_KEYS), fc.jsonValue({ maxDepth: 2 }))
      .map(([k, v]) => withKey({}, k, v)),
  },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => Array.from({ length: n }, (_, i) => i)) },
);

const stringFor = (schema: Schema): fc.Arbitrary<string> => {
  const minLength = (schema.minLength as number | undefined) ?? 0;
  const maxLength = (schema.maxLength as number | undefined) ?? 300;
  if (schema.format === 'uuid') return fc.uuid();
  if (schema.format === 'date-time')
    return fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString());
  if (typeof schema.pattern === 'string') {
    // No filter on the length (a pattern with a long minLength would rarely pass one): cut at the limit.
    return fc
      .stringMatching(new RegExp(schema.pattern as string), { size: minLength > 20 ? 'large' : 'small' })
      .map((s) => s.slice(0, maxLength));
  }
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.string({
        unit: 'grapheme-ascii',
        minLength,
        maxLength: Math.min(maxLength, Math.max(minLength, 40)),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.string({ unit: 'binary', minLength, maxLength: Math.min(maxLength, Math.max(minLength, 40)) }),
    },
    // Right at the limit, and one past it.
    { weight: 1, arbitrary: fc.constantFrom(maxLength, maxLength + 1).map((n) => 'é'.repeat(Math.max(n, minLength))) },
  );
};

/** Values the schema accepts (or nearly: at its limits), each part sometimes replaced by a hostile one. */
export function fromSchema(schema: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const valid = validFor(schema ?? {}, depth);
  return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: hostileValue });
}

function validFor(schema: Schema, depth: number): fc.Arbitrary<unknown> {
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  const union = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (union) return fc.oneof(...union.map((s) => validFor(s, depth)));
  switch (schema.type) {
    case 'string':
      return stringFor(schema);
    case 'integer':
      return fc.integer({
        min: (schema.minimum as number | undefined) ?? -(2 ** 31),
        max: (schema.maximum as number | undefined) ?? 2 ** 40,
      });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const items = (schema.items as Schema | undefined) ?? {};
      const maxLength = Math.min((schema.maxItems as number | undefined) ?? 5, 8) + 1;
      return fc.array(depth > 4 ? validFor(items, depth + 1) : fromSchema(items, depth + 1), { maxLength });
    }
    case 'object': {
      const properties = (schema.properties as Record<string, Schema> | undefined) ?? {};
      const required = (schema.required as string[] | undefined) ?? [];
      const model = Object.fromEntries(
        Object.entries(properties).map(([k, s]) => {
          const hint = HINTS[k];
          return [k, hint ? fc.oneof(fromSchema(s, depth + 1), fc.constantFrom(...hint)) : fromSchema(s, depth + 1)];
        }),
      );
      const extra = fc.array(
        fc.tuple(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })), hostileValue),
        { maxLength: 2 },
      );
      const twist = fc.oneof(
        { weight: 8, arbitrary: fc.constant({ drop: undefined, extra: false }) },
        ...(required.length > 0
          ? [{ weight: 1, arbitrary: fc.constantFrom(...required).map((drop) => ({ drop, extra: false })) }]
          : []),
        { weight: 1, arbitrary: fc.constant({ drop: undefined, extra: true }) },
      );
      return fc
        .tuple(fc.record(model, { requiredKeys: required.filter((k) => k in properties) }), twist, extra)
        .map(([record, { drop, extra: addExtra }, extras]) => {
          const value: Record<string, unknown> = { ...record };
          if (drop !== undefined) delete value[drop];
          if (addExtra) for (const [k, v] of extras) withKey(value, k, v);
          return value;
        });
    }
    default:
      return fc.jsonValue({ maxDepth: 3 }); // Type.Unknown(): anything
  }
}

/** Every byte of the UTF-8 form (a lone surrogate becomes U+FFFD) as %XX: a form or query value. */
export function percentEncode(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
}

/** A form or query string from a value: an object's fields, or raw bytes with bad escapes. */
export function formOf(value: unknown, raw: string | undefined): string {
  if (raw !== undefined) return raw;
  if (value === null || typeof value !== 'object') return percentEncode(String(value));
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const values = Array.isArray(v) ? v : [v];
    for (const item of values.slice(0, 20)) {
      pairs.push(
        `${percentEncode(k)}=${percentEncode(typeof item === 'string' ? item : (JSON.stringify(item) ?? ''))}`,
      );
    }
  }
  return pairs.join('&');
}

const rawForm = fc
  .array(
    fc.oneof(
      fc.constantFrom(...BAD_PERCENT),
      fc.constantFrom(
        '=',
        '&',
        '&&',
        '==',
        'a=1&a=2',
        '__proto__=x',
        'constructor[prototype][x]=1',
        'next=%2F%2Fevil',
        '_csrf=',
        ';',
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 12 }),
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''));

const RAW_JSON = [
  '',
  '{',
  '[]',
  'null',
  '"str"',
  '{"a":1}}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"x":1}}}',
  '\u0000\u0001',
  '{"a":"\\ud800"}',
  '{"a":1,"a":2}',
  '['.repeat(5000),
  '{"a":'.repeat(2000),
  '1e99999',
  '\ufeff{}',
  'not json',
];

export type Encoding = 'json' | 'form' | 'none' | 'other';

export interface FuzzInput {
  method: string;
  path: string;
  query: string;
  encoding: Encoding;
  contentType?: string;
  payload?: string;
  headers: Record<string, string>;
  credential: 'none' | 'session' | 'access' | 'session-bearer';
  /** Send the session's real CSRF token (x-csrf-token), to get past the CSRF check. */
  realCsrf: boolean;
}

const CONTENT_TYPES: Record<Encoding, fc.Arbitrary<string | undefined>> = {
  json: fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=utf-16',
        'application/json;;',
      ),
    },
  ),
  form: fc.constantFrom('application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=latin1'),
  none: fc.constant(undefined),
  other: fc.oneof(
    fc.constantFrom(
      'text/plain',
      'multipart/form-data; boundary=x',
      '',
      'application/jsonx',
      'application/xml',
      '*/*',
      'application/json, text/plain',
    ),
    fc.string({ unit: 'grapheme-ascii', maxLength: 30 }),
  ),
};

/** Header values a client may send: printable Latin-1, which every HTTP parser accepts as a value. */
const headerText = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'x'.repeat(4000),
    'https://evil.example',
    'null',
    'a;b',
    'a,b',
    '"',
    '\t',
    'é',
    'ÿ',
    '%C4%80',
  ),
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength: 60,
  }),
);

const hostileHeaders = fc.record(
  {
    'x-trace-id': headerText,
    origin: fc.oneof(headerText, fc.constantFrom('https://app.example', 'null')),
    cookie: fc.oneof(
      headerText,
      fc.constantFrom('keyfarm_session=x', 'keyfarm_session=;keyfarm_session=y', '__proto__=1', 'a=%E0%A4%A'),
    ),
    authorization: fc.oneof(
      headerText,
      fc.constantFrom('Bearer', 'Bearer ', 'Bearer kfa_x', 'Basic', 'Basic !!!', 'Basic YTpi', 'Bearer a b'),
    ),
    'x-forwarded-for': fc.oneof(headerText, fc.constantFrom('1.2.3.4', '::1', '1.2.3.4, 5.6.7.8', 'x'.repeat(6000))),
    'x-csrf-token': headerText,
    accept: fc.constantFrom('*/*', 'text/html', 'application/json', ''),
    'content-encoding': fc.constantFrom('gzip', 'br', 'identity', 'x'),
  },
  { requiredKeys: [] },
) as fc.Arbitrary<Record<string, string>>;

/** Hostile text in a path segment (for `:param` routes and unknown paths). */
const pathSegment = fc.oneof(
  oddString.map(percentEncode),
  fc.constantFrom(...BAD_PERCENT),
  fc.constantFrom('..', '.', '%2e%2e', 'x'.repeat(3000)),
);

/** `arbitrary`'s value one time in `every`, else undefined. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });

/** One request to `route`, valid-looking or not. */
export function requestFor(route: FuzzRoute): fc.Arbitrary<FuzzInput> {
  const hasBody = route.method !== 'GET' && route.method !== 'OPTIONS';
  const queryValue = route.schema.querystring
    ? fromSchema(route.schema.querystring as Schema)
    : fc.dictionary(fc.constantFrom('next', 'q', 'name', '__proto__', 'x'), hostileValue, { maxKeys: 3 });
  const path =
    route.url === '*'
      ? fc.array(pathSegment, { minLength: 1, maxLength: 3 }).map((s) => `/${s.join('/')}`)
      : route.url.includes(':') || route.url.endsWith('*')
        ? fc.array(pathSegment, { minLength: 4, maxLength: 4 }).map((segments) => {
            let i = 0;
            return route.url.replace(/:[A-Za-z]+|\*$/g, () => segments[i++ % segments.length]!);
          })
        : fc.constant(route.url);
  const encoding: fc.Arbitrary<Encoding> = hasBody
    ? fc.oneof(
        { weight: 6, arbitrary: fc.constant('json' as const) },
        { weight: 3, arbitrary: fc.constant('form' as const) },
        { weight: 1, arbitrary: fc.constantFrom('none' as const, 'other' as const) },
      )
    : fc.constant('none' as const);
  const bodyValue = route.schema.body ? fromSchema(route.schema.body as Schema) : hostileValue;
  return fc
    .record({
      path,
      query: fc.tuple(queryValue, sometimes(rawForm, 4)).map(([v, raw]) => formOf(v ?? {}, raw)),
      encoding,
      body: bodyValue,
      rawBody: sometimes(fc.oneof(fc.constantFrom(...RAW_JSON), rawForm, oddString), 6),
      contentTypeSeed: fc.nat(),
      headers: sometimes(hostileHeaders, 3),
      credential: fc.oneof(
        { weight: 1, arbitrary: fc.constant('none' as const) },
        { weight: 2, arbitrary: fc.constantFrom('session' as const, 'access' as const, 'session-bearer' as const) },
      ),
      realCsrf: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    })
    .chain((r) =>
      CONTENT_TYPES[r.encoding].map((contentType): FuzzInput => {
        let payload: string | undefined;
        if (r.encoding === 'json') payload = r.rawBody ?? JSON.stringify(r.body) ?? 'null';
        else if (r.encoding === 'form' || r.encoding === 'other') payload = formOf(r.body, r.rawBody);
        return {
          method: route.method,
          path: r.path,
          query: r.query,
          encoding: r.encoding,
          contentType,
          payload,
          headers: r.headers ?? {},
          credential: r.credential,
          realCsrf: r.realCsrf,
        };
      }),
    );
}
