// The security-critical modules under mutation testing, each with the tests that cover it. Only these
// tests run for a mutant of the module (scripts/mutation/run-tests.mjs), which is what keeps a run short.
// `ranges` limit mutation to the lines that hold the security checks of a file that is mostly plumbing.
// Tests run in the order given and stop at the first failure: the fastest that can kill a mutant go first.
// `pattern` narrows a test file to the cases that exercise the module (node --test-name-pattern; a suite
// whose name matches runs whole, so a pattern must not match a file's outer describe).

/** @typedef {{ file: string, pattern?: string }} TestFile */
/** @typedef {{ name: string, source: string, ranges?: string[], kind: 'unit' | 'integration', tests: TestFile[] }} MutationModule */

const unit = (name) => ({ file: `dist/test/unit/${name}.test.js` });
const integration = (name, pattern) => ({ file: `dist/test/integration/${name}.test.js`, pattern });

/** @type {MutationModule[]} */
export const MODULES = [
  { name: 'policy', source: 'shared/policy.ts', kind: 'unit', tests: [unit('policy')] },
  {
    name: 'custody-envelope',
    source: 'shared/custody/envelope.ts',
    kind: 'unit',
    tests: [unit('custody-envelope'), unit('custody-local-keyring')],
  },
  { name: 'payload-seal', source: 'shared/farm/payload-seal.ts', kind: 'unit', tests: [unit('farm-payload-seal')] },
  { name: 'acting-cache', source: 'api/services/acting-cache.ts', kind: 'unit', tests: [unit('acting-cache')] },
  {
    name: 'nip46-authorization-cache',
    source: 'workers/nip46-authorization-cache.ts',
    kind: 'unit',
    tests: [unit('nip46-authorization-cache')],
  },
  // Eviction: an entry's release (its slot wiped, zeros answered after), evictKey, clear, a load that an
  // eviction overtook, the byte budget, and wiping on removal.
  {
    name: 'key-cache',
    source: 'workers/key-cache.ts',
    ranges: ['55-59', '170-196', '237-262'],
    kind: 'unit',
    tests: [unit('farm-key-cache')],
  },
  {
    name: 'tokens',
    source: 'api/services/tokens.ts',
    kind: 'integration',
    tests: [
      unit('tokens'),
      integration('security-http', 'RPC access token|as a session|prefixed tokens'),
      integration('api-flow', '^accounts$|^OAuth$'),
    ],
  },
  // The redirect, scope and PKCE checks, code issue, silent re-authorization and poll, the code exchange and
  // refresh rotation (not the response objects).
  {
    name: 'oauth',
    source: 'api/services/oauth.ts',
    ranges: ['41-169', '199-279'],
    kind: 'integration',
    tests: [
      unit('oauth-checks'),
      integration('security-http', 'OAuth code binding|access token past|refresh token past'),
      integration('web-security', 'oauth/authorize'),
      integration('api-flow', '^OAuth$'),
      integration('keycast'),
    ],
  },
  {
    name: 'sessions',
    source: 'database/queries/sessions.ts',
    kind: 'integration',
    tests: [
      integration('security-http', 'session past|other session|as a session|RPC access token'),
      integration('api-flow', 'logs out'),
    ],
  },
  // Revocation and the access-token lookup (expiry); the rest is listing and relay bookkeeping.
  {
    name: 'authorizations',
    source: 'database/queries/authorizations.ts',
    ranges: ['117-154'],
    kind: 'integration',
    tests: [
      integration('api-flow', '^authorizations$|^RPC$|^OAuth$'),
      integration('security-http', 'expires_at|access token past|refresh token past|RPC access token|revoke'),
    ],
  },
  {
    name: 'session-plugin',
    source: 'api/plugins/session.ts',
    kind: 'integration',
    tests: [
      unit('session-credentials'),
      integration('web-security'),
      integration('api-flow', '^accounts$'),
      integration('security-http', 'session past|other session|as a session'),
    ],
  },
  {
    name: 'key-export',
    source: 'api/services/key-export.ts',
    kind: 'integration',
    tests: [
      unit('key-export-ncryptsec'),
      integration('web-security', 'key export'),
      integration('security-http', 'key export'),
      integration('email', 'refuses key export until'),
    ],
  },
  // The keys and arguments of the Lua counter and what its answer becomes (the counting itself is Lua).
  {
    name: 'login-limiter',
    source: 'api/services/login-limiter.ts',
    ranges: ['81-130'],
    kind: 'integration',
    tests: [integration('security-http', 'password spraying'), integration('login-throttle')],
  },
  // countInWindow, the store, the per-route options and their keys, and the install; not the table of routes,
  // nor the Lua, nor the script's loading and registration with ioredis (lines 50-51, 55-59), whose mutants
  // cannot change what the limit does. countInWindow counts the mail sent to one address.
  {
    name: 'rate-limits',
    source: 'api/plugins/rate-limits.ts',
    ranges: ['65-132'],
    kind: 'integration',
    tests: [integration('rate-limits'), integration('email', 'EMAIL_LIMIT_PER_ADDRESS')],
  },
  // The request window (onEvent) and the claim (claim); the rest parses, batches and publishes.
  {
    name: 'request-router',
    source: 'relay-ingest/request-router.ts',
    ranges: ['131-134', '215-235'],
    kind: 'integration',
    tests: [
      integration('security-nip46', 'stale|replayed'),
      integration(
        'nip46-abuse',
        'inside the window|either edge|claim Redis refused|relay-ingest restarts|limits requests from client keys',
      ),
    ],
  },
  // The window default, the per-bunker keys and what the Lua's answer becomes; not the script's loading and
  // registration with ioredis (lines 8-9, 39-41), whose mutants cannot change what the limit does.
  {
    name: 'unbound-client-limit',
    source: 'relay-ingest/unbound-client-limit.ts',
    ranges: ['38-38', '45-56'],
    kind: 'integration',
    tests: [integration('nip46-abuse', 'limits requests from client keys|counts unbound requests atomically')],
  },
];

/** Modules named on the command line (all when none), or an error naming the unknown ones. */
export function selectModules(names) {
  if (names.length === 0) return MODULES;
  const unknown = names.filter((n) => !MODULES.some((m) => m.name === n));
  if (unknown.length > 0)
    throw new Error(
      `unknown mutation module(s): ${unknown.join(', ')}; known: ${MODULES.map((m) => m.name).join(', ')}`,
    );
  return MODULES.filter((m) => names.includes(m.name));
}
