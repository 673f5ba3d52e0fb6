// The NIP-46 door's HTTP side: a user pastes an app's nostrconnect:// URI (the app waits on its relays),
// and NIP-05 style discovery of the bunker service at /.well-known/nostr.json.
import { randomBytes } from 'node:crypto';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NIP46_KIND } from '../../shared/nip46/protocol.js';
import { finalizeEvent } from '../../shared/nostr/event.js';
import { isValidPubkeyHex } from '../../shared/nostr/keys.js';
import { getConversationKey, nip44Encrypt } from '../../shared/nostr/nip44.js';
import { decode as nip19Decode } from 'nostr-tools/nip19';
import type { ApiContext } from '../context.js';
import { HttpError } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { createAuthorization } from '../services/authorizations.js';
import { ErrorBody, PolicySlug } from '../schemas.js';

const MAX_URI_RELAYS = 8;
const MAX_URI_PERMS = 32;
const MAX_PERM_LENGTH = 64;

export interface NostrConnectUri {
  clientPubkey: string;
  relays: string[];
  secret: string;
  name?: string;
  /** What the app asks for (`perms=`, e.g. sign_event:1,nip44_encrypt), shown to the user before connecting. */
  perms: string[];
}

/** A pasted nostrconnect:// URI that cannot be used; the body says `uri: <detail>`. */
export class NostrConnectUriError extends HttpError {
  constructor(readonly detail: string) {
    super(400, `uri: ${detail}`);
    this.name = 'NostrConnectUriError';
  }
}

/** nostrconnect://<client pubkey>?relay=<url>&relay=...&secret=<secret>[&name=...&perms=...] */
export function parseNostrConnectUri(uri: string): NostrConnectUri {
  let url: URL;
  try {
    url = new URL(uri.trim());
  } catch {
    throw new NostrConnectUriError('not a nostrconnect:// URI');
  }
  if (url.protocol !== 'nostrconnect:') throw new NostrConnectUriError('not a nostrconnect:// URI');
  const clientPubkey = url.hostname || url.pathname.replace(/^\/+/, '');
  if (!isValidPubkeyHex(clientPubkey)) throw new NostrConnectUriError('the client pubkey must be 64 hex');
  const relays = [...new Set(url.searchParams.getAll('relay'))];
  if (relays.length === 0) throw new NostrConnectUriError('at least one relay is required');
  if (relays.length > MAX_URI_RELAYS) throw new NostrConnectUriError(`at most ${MAX_URI_RELAYS} relays`);
  if (relays.some((r) => !/^wss?:\/\/[^\s/?#]+/.test(r) || r.length > 512))
    throw new NostrConnectUriError('relays must be ws:// or wss:// URLs');
  const secret = url.searchParams.get('secret');
  if (!secret || secret.length > 256) throw new NostrConnectUriError('a secret is required');
  const name = url.searchParams.get('name')?.slice(0, 200) || undefined;
  const perms = [
    ...new Set(
      (url.searchParams.get('perms') ?? '')
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    ),
  ];
  if (perms.length > MAX_URI_PERMS) throw new NostrConnectUriError(`at most ${MAX_URI_PERMS} perms`);
  if (perms.some((p) => p.length > MAX_PERM_LENGTH))
    throw new NostrConnectUriError(`a perm is longer than ${MAX_PERM_LENGTH} characters`);
  return { clientPubkey, relays, secret, name, perms };
}

/** Creates the authorization a pasted nostrconnect:// URI asks for and queues the `connect` response to the client. */
export async function connectNostrConnectUri(
  ctx: ApiContext,
  userId: string,
  input: { uri: string; policySlug?: string; appName?: string },
): Promise<{ authorizationId: string; bunkerPubkey: string; clientPubkey: string; relays: string[] }> {
  const uri = parseNostrConnectUri(input.uri);
  const created = await createAuthorization(ctx, {
    userId,
    applicationName: input.appName ?? uri.name ?? 'nostrconnect app',
    policySlug: input.policySlug,
    relays: uri.relays,
    clientPubkey: uri.clientPubkey,
    // The `connect` response: result = the client's secret, which is how the client knows it is us.
    connectResponse: (bunkerSk, bunkerPubkey) => {
      const convKey = getConversationKey(bunkerSk, uri.clientPubkey);
      try {
        const content = nip44Encrypt(
          JSON.stringify({ id: randomBytes(8).toString('hex'), result: uri.secret }),
          convKey,
        );
        const event = finalizeEvent(
          { kind: NIP46_KIND, content, tags: [['p', uri.clientPubkey]], created_at: Math.floor(Date.now() / 1000) },
          bunkerSk,
          bunkerPubkey,
        );
        return { event, relays: uri.relays };
      } finally {
        convKey.fill(0);
      }
    },
  });
  return {
    authorizationId: created.authorizationId,
    bunkerPubkey: created.bunkerPubkey,
    clientPubkey: uri.clientPubkey,
    relays: created.relays,
  };
}

const NostrConnectBody = Type.Object(
  {
    uri: Type.String({ minLength: 1, maxLength: 4096 }),
    policy_slug: Type.Optional(PolicySlug),
    app_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

/** A name of /.well-known/nostr.json: a user's hex pubkey or npub. */
function pubkeyOfName(name: string): string | undefined {
  if (/^[0-9a-f]{64}$/.test(name)) return name;
  if (name.startsWith('npub1')) {
    try {
      const d = nip19Decode(name);
      if (d.type === 'npub') return d.data;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export const nip46Routes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post(
    '/api/user/nostrconnect',
    {
      preHandler: requireSession(ctx),
      schema: {
        body: NostrConnectBody,
        response: {
          201: Type.Object({
            authorization_id: Type.String(),
            bunker_pubkey: Type.String(),
            client_pubkey: Type.String(),
            relays: Type.Array(Type.String()),
          }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const created = await connectNostrConnectUri(ctx, request.userId!, {
        uri: request.body.uri,
        policySlug: request.body.policy_slug,
        appName: request.body.app_name,
      });
      return reply.status(201).send({
        authorization_id: created.authorizationId,
        bunker_pubkey: created.bunkerPubkey,
        client_pubkey: created.clientPubkey,
        relays: created.relays,
      });
    },
  );

  // NIP-46 discovery (NIP-05 style): `nip46.relays` and `nip46.nostrconnect_url` as the spec has them,
  // plus the older `nip46: {<pubkey>: [relays]}` map that nostr-tools reads, for a name that is a user.
  app.get(
    '/.well-known/nostr.json',
    {
      schema: { querystring: Type.Object({ name: Type.Optional(Type.String({ maxLength: 128 })) }) },
    },
    async (request, reply) => {
      reply.header('access-control-allow-origin', '*');
      const relays = ctx.config.BUNKER_RELAYS;
      const nip46: Record<string, unknown> = {
        relays,
        nostrconnect_url: `${ctx.config.PUBLIC_URL}/nostrconnect/<nostrconnect>`,
      };
      const names: Record<string, string> = {};
      const name = request.query.name;
      const pubkey = name ? pubkeyOfName(name) : undefined;
      if (name && pubkey) {
        const { rowCount } = await ctx.db.query('SELECT 1 FROM users WHERE pubkey = $1', [pubkey]);
        if (rowCount) {
          names[name] = pubkey;
          // The service's relays only: a user's own relays are theirs to share, not the farm's to publish.
          nip46[pubkey] = relays;
        }
      }
      return { names, nip46 };
    },
  );
};
