// Drives every route of a running api with generated requests (fastify's inject() for most, raw HTTP for a
// slice), as a stranger, a signed-in browser (session cookie + CSRF token), an app (bearer access token)
// and a session bearer; checks every answer and counts them per route.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { isWellFormedOrigin } from '../../../api/safe-origin.js';
import { recordSecret } from '../logs.js';
import { requestFor, type FuzzInput } from './arbitraries.js';
import { rawHttp } from './raw-http.js';
import type { FuzzRoute } from './route-table.js';

export interface Credentials {
  session: string;
  /** `name=value` of the CSRF secret cookie. */
  csrfCookie: string;
  csrfToken: string;
  access: string;
}

export interface FuzzTarget {
  app: FastifyInstance;
  url: string;
  access: string;
  allowedOrigins: string[];
}

export interface RouteStats {
  route: string;
  inputs: number;
  viaHttp: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  /** 503s of /healthz/ready: its verdict on a slow dependency (1 s probes on a busy machine), not an error. */
  notReady: number;
}

export interface FuzzReport {
  inputs: number;
  viaHttp: number;
  fiveXx: number;
  problems: string[];
  crashes: string[];
  durationMs: number;
  seed: number;
  routes: RouteStats[];
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

const SAME_SITE_PATH = /^\/(?![/\\])[\x21-\x7e]*$/;
const TRACE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const OWN_CSP = new Set([
  'default-src',
  'script-src',
  'style-src',
  'img-src',
  'connect-src',
  'form-action',
  'frame-ancestors',
  'base-uri',
  'object-src',
  'upgrade-insecure-requests',
]);
const BOARD_PREFIX = '/admin/queues';
const RENEW_EVERY_MS = 3000;

const header = (answer: Answer, name: string) => {
  const v = answer.headers[name];
  return v === undefined ? undefined : String(Array.isArray(v) ? v.join(', ') : v);
};

/** Pages may answer an error with HTML; everything else answers {"error": "..."}. */
function mayAnswerHtml(path: string, method: string): boolean {
  if (path === '/api/oauth/authorize') return method === 'GET';
  // The bring-your-own-key register form posts here and gets its page back, with the mistake beside its field.
  if (path === '/api/oauth/register') return method === 'POST';
  return !/^\/(?:api\/|health|\.well-known\/|admin\/)/.test(path);
}

/** /healthz/ready saying a dependency is slow or down: its job, whatever the request. */
function isReadinessVerdict(input: FuzzInput, answer: Answer): boolean {
  return input.path === '/healthz/ready' && answer.status === 503 && /^\{"status":"unavailable"/.test(answer.body);
}

/** What is wrong with an answer, or undefined. */
export function problemWith(input: FuzzInput, answer: Answer, allowedOrigins: string[]): string | undefined {
  if (answer.status >= 500 && !isReadinessVerdict(input, answer))
    return `status ${answer.status}: ${answer.body.slice(0, 200)}`;
  if (answer.status >= 400 && input.method !== 'HEAD') {
    const type = header(answer, 'content-type') ?? '';
    if (type.startsWith('application/json')) {
      let body: { error?: unknown };
      try {
        body = JSON.parse(answer.body);
      } catch {
        return `status ${answer.status}: a JSON error that does not parse: ${answer.body.slice(0, 200)}`;
      }
      if (typeof body?.error !== 'string')
        return `status ${answer.status}: no "error" string in ${answer.body.slice(0, 200)}`;
      if (/\n\s+at /.test(answer.body)) return `status ${answer.status}: a stack trace in the body`;
    } else if (!(type.startsWith('text/html') && mayAnswerHtml(input.path, input.method))) {
      return `status ${answer.status}: a ${type || 'typeless'} error body: ${answer.body.slice(0, 200)}`;
    }
  }
  const location = header(answer, 'location');
  if (location !== undefined && !SAME_SITE_PATH.test(location)) {
    let origin = '';
    try {
      origin = new URL(location).origin;
    } catch {
      /* not absolute */
    }
    if (!/^[\x21-\x7e]+$/.test(location) || !isWellFormedOrigin(origin)) return `Location ${JSON.stringify(location)}`;
  }
  const csp = header(answer, 'content-security-policy');
  if (csp !== undefined && !input.path.startsWith(BOARD_PREFIX)) {
    for (const directive of csp.split(';').map((d) => d.trim())) {
      const [name, ...sources] = directive.split(/ +/);
      if (!OWN_CSP.has(name!)) return `CSP directive ${JSON.stringify(directive)}`;
      if (name === 'form-action' && sources.some((s) => s !== "'self'" && !isWellFormedOrigin(s)))
        return `CSP form-action ${directive}`;
    }
  }
  const traceId = header(answer, 'x-trace-id');
  if (traceId !== undefined && !TRACE_ID.test(traceId)) return `x-trace-id ${JSON.stringify(traceId)}`;
  const allowOrigin = header(answer, 'access-control-allow-origin');
  if (allowOrigin !== undefined && allowOrigin !== '*' && !allowedOrigins.includes(allowOrigin))
    return `Access-Control-Allow-Origin ${allowOrigin}`;
  return undefined;
}

function cookiesOf(setCookie: string | string[] | number | undefined): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of [setCookie ?? []].flat()) {
    const pair = /^([^=;\s]+)=([^;]*)/.exec(String(line));
    if (pair) found.set(pair[1]!, pair[2]!);
  }
  return found;
}

/** A fresh account's session and the CSRF pair a signed-in page hands out. */
export async function signIn(app: FastifyInstance, access: string): Promise<Credentials> {
  const password = recordSecret(`fuzz-${randomBytes(12).toString('hex')}`);
  const email = `fuzz-${randomBytes(6).toString('hex')}@example.com`;
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { email, password } });
  if (registered.statusCode !== 201)
    throw new Error(`fuzz sign-in: register answered ${registered.statusCode} ${registered.body}`);
  const session = recordSecret(registered.json().token as string);
  const page = await app.inject({ method: 'GET', url: '/account', headers: { cookie: `keyfarm_session=${session}` } });
  const csrf = [...cookiesOf(page.headers['set-cookie'])].find(([name]) => name.includes('csrf'));
  const csrfToken = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
  if (!csrf || !csrfToken) throw new Error(`fuzz sign-in: no CSRF pair on /account (${page.statusCode})`);
  return { session, csrfCookie: `${csrf[0]}=${csrf[1]}`, csrfToken: recordSecret(csrfToken), access };
}

function requestOf(input: FuzzInput, creds: Credentials) {
  const headers: Record<string, string> = { ...input.headers };
  if (input.contentType !== undefined) headers['content-type'] = input.contentType;
  if (input.credential === 'session') {
    headers.cookie = `keyfarm_session=${creds.session}; ${creds.csrfCookie}`;
    if (input.realCsrf) headers['x-csrf-token'] = creds.csrfToken;
  } else if (input.credential === 'access') {
    headers.authorization = `Bearer ${creds.access}`;
  } else if (input.credential === 'session-bearer') {
    headers.authorization = `Bearer ${creds.session}`;
  }
  const target = input.query ? `${input.path}?${input.query}` : input.path;
  return { method: input.method, target, headers, payload: input.payload };
}

export interface FuzzOptions {
  routes: FuzzRoute[];
  /** Generated inputs in all, spread evenly over the routes. */
  runs: number;
  seed?: number;
  /** Share of inputs sent over real HTTP rather than inject(). */
  httpShare?: number;
  /** Routes fuzzed at once. */
  concurrency?: number;
  /** Stop at the first problem (fast-check shrinks it and throws), or count them all. */
  stopOnProblem: boolean;
}

export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
  const perRoute = Math.max(1, Math.ceil(options.runs / options.routes.length));
  const problems: string[] = [];
  const crashes: string[] = [];
  const onCrash = (err: unknown) => crashes.push(String((err as Error)?.stack ?? err));
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);

  const creds = await signIn(target.app, target.access);
  // The logout routes get a session of their own, so a fuzzed logout does not end the one every other
  // route rides on. After one that worked, that session is made afresh, at most every few seconds (each
  // costs a password hash); in between, logouts meet an ended session, which is worth fuzzing too.
  let logoutCreds = await signIn(target.app, target.access);
  let renewing: Promise<void> | undefined;
  let renewedAt = performance.now();
  const renew = () => {
    if (renewing || performance.now() - renewedAt < RENEW_EVERY_MS) return;
    renewing = signIn(target.app, target.access).then((c) => {
      logoutCreds = c;
      renewedAt = performance.now();
      renewing = undefined;
    });
    return renewing;
  };

  const started = performance.now();
  const stats: RouteStats[] = [];
  const httpEvery = Math.max(1, Math.round(1 / (options.httpShare ?? 0.05)));
  const send = async (input: FuzzInput, viaHttp: boolean, using: Credentials): Promise<Answer> => {
    const request = requestOf(input, using);
    if (viaHttp) return rawHttp(target.url, request);
    const res = await target.app.inject({
      method: request.method as 'GET',
      url: request.target,
      headers: request.headers,
      payload: request.payload,
    });
    return { status: res.statusCode, headers: res.headers, body: res.body };
  };

  const fuzzRoute = async (route: FuzzRoute) => {
    const row: RouteStats = {
      route: `${route.method} ${route.url}`,
      inputs: 0,
      viaHttp: 0,
      s2xx: 0,
      s3xx: 0,
      s4xx: 0,
      s5xx: 0,
      notReady: 0,
    };
    stats.push(row);
    const isLogout = /logout/.test(route.url);
    const property = fc.asyncProperty(requestFor(route), async (input) => {
      const using = isLogout ? logoutCreds : creds;
      const viaHttp = row.inputs % httpEvery === httpEvery - 1;
      const answer = await send(input, viaHttp, using);
      row.inputs++;
      if (viaHttp) row.viaHttp++;
      const klass = Math.floor(answer.status / 100);
      if (klass === 2) row.s2xx++;
      else if (klass === 3) row.s3xx++;
      else if (klass === 4) row.s4xx++;
      else if (isReadinessVerdict(input, answer)) row.notReady++;
      else if (klass === 5) row.s5xx++;
      if (isLogout && answer.status < 400 && input.credential !== 'none' && using === logoutCreds) await renew();
      const problem = problemWith(input, answer, target.allowedOrigins);
      if (!problem) return true;
      const what = `${row.route} <- ${viaHttp ? 'HTTP' : 'inject'} ${input.credential} ${input.method} ${requestOf(input, creds).target.slice(0, 300)} ${input.contentType ?? ''} ${input.payload?.slice(0, 300) ?? ''}: ${problem}`;
      if (options.stopOnProblem) throw new Error(what);
      if (problems.length < 50) problems.push(what);
      return true;
    });
    try {
      await fc.assert(property, { numRuns: perRoute, seed: seed + stats.length, endOnFailure: true });
    } catch (err) {
      // fast-check puts the property's own error in `cause`; the test runner shows only the message.
      const cause = (err as Error).cause as Error | undefined;
      throw new Error(`${(err as Error).message}\n${cause?.message ?? ''}`);
    }
  };

  try {
    const queue = [...options.routes];
    const lanes = Array.from({ length: options.concurrency ?? 4 }, async () => {
      for (let route = queue.shift(); route; route = queue.shift()) await fuzzRoute(route);
    });
    await Promise.all(lanes);
  } finally {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
  const routes = stats.sort((a, b) => a.route.localeCompare(b.route));
  return {
    inputs: routes.reduce((n, r) => n + r.inputs, 0),
    viaHttp: routes.reduce((n, r) => n + r.viaHttp, 0),
    fiveXx: routes.reduce((n, r) => n + r.s5xx, 0),
    problems,
    crashes,
    durationMs: Math.round(performance.now() - started),
    seed,
    routes,
  };
}

/** The report as a table: one line a route, then the totals. */
export function formatReport(report: FuzzReport): string {
  const head = ['route', 'inputs', 'http', '2xx', '3xx', '4xx', '5xx', 'not ready'];
  const columns = ['inputs', 'viaHttp', 's2xx', 's3xx', 's4xx', 's5xx', 'notReady'] as const;
  const rows = report.routes.map((r) => [r.route, ...columns.map((c) => String(r[c]))]);
  rows.push(['total', ...columns.map((c) => String(report.routes.reduce((n, r) => n + r[c], 0)))]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    line(head),
    ...rows.map(line),
    `${report.inputs} inputs in ${(report.durationMs / 1000).toFixed(1)} s (${Math.round(report.inputs / (report.durationMs / 1000))}/s), ` +
      `seed ${report.seed}, 5xx ${report.fiveXx}, problems ${report.problems.length}, crashes ${report.crashes.length}`,
  ].join('\n');
}
