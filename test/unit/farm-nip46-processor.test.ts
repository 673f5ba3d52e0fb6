// The NIP-46 processor on the job skeleton, with real crypto on this thread: a user key that cannot be
// loaded fails only the requests that need it (an error response, as on the HTTP door), not the job;
// parameters are checked as on the HTTP door.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { finalizeEvent, generateSecretKey, getPublicKey, nip44 } from 'nostr-tools';
import { KeyManagerUnavailableError } from '../../shared/custody/key-manager.js';
import type { Nip46Authorization } from '../../database/queries/nip46.js';
import type { Nip46Item, ReplyMessage } from '../../shared/farm/jobs.js';
import { createLogger } from '../../shared/logger.js';
import { NIP46_KIND } from '../../shared/nip46/protocol.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { ShardNames } from '../../shared/shard.js';
import { runCryptoOps } from '../../workers/crypto/ops.js';
import type { CryptoRunner } from '../../workers/crypto/types.js';
import { KeyCache } from '../../workers/key-cache.js';
import { createNip46Processor } from '../../workers/nip46-processor.js';

const bunkerSk = generateSecretKey();
const userSk = generateSecretKey();
const clientSk = generateSecretKey();
const bunkerPk = getPublicKey(bunkerSk);
const clientPk = getPublicKey(clientSk);
const peerPk = getPublicKey(generateSecretKey());

const auth: Nip46Authorization = {
  id: 'auth-1',
  userId: 'user-1',
  bunkerPubkey: bunkerPk,
  bunkerKeyId: 'bunker-key',
  secretHash: createHash('sha256').update('s').digest(),
  clientPubkey: clientPk,
  relays: [],
  revokedAt: null,
  expiresAt: null,
  userPubkey: getPublicKey(userSk),
  userKeyId: 'user-key',
  permissions: { allowed_kinds: 'all', encrypt: true, decrypt: true },
  grantedKinds: [],
};

const inThread: CryptoRunner = { run: async (ops) => runCryptoOps(ops), close: async () => {} };

function processorWith(userKey: () => Promise<{ secretKey: Uint8Array; pubkey: string }>) {
  const published: string[] = [];
  const processor = createNip46Processor({
    cache: new KeyCache(1 << 20),
    crypto: inThread,
    activity: { record: () => {} },
    publisher: {
      publish: async (_ch: string, msg: string) => (published.push(msg), 1),
    } as unknown as Redis,
    names: new ShardNames('kfu'),
    logger: createLogger({ level: 'silent' }),
    keyLoader: {
      load: async (id) => (id === 'bunker-key' ? { secretKey: new Uint8Array(bunkerSk), pubkey: bunkerPk } : userKey()),
    },
    store: {
      findAuthorizations: async () => [{ ...auth }],
      bindClient: async () => false,
      logout: async () => false,
      takeUse: async () => true,
    },
  });
  return { processor, published };
}

const convKey = nip44.getConversationKey(clientSk, bunkerPk);

function request(id: string, method: string, params: unknown[]): Nip46Item {
  const event = finalizeEvent(
    {
      kind: NIP46_KIND,
      created_at: Math.floor(Date.now() / 1000),
      tags: [['p', bunkerPk]],
      content: nip44.encrypt(JSON.stringify({ id, method, params }), convKey),
    },
    clientSk,
  ) as NostrEvent;
  return { id: event.id, traceId: `t-${id}`, bunkerPubkey: bunkerPk, event };
}

/** The decrypted response of each request, in order. */
function responses(reply: ReplyMessage): { id: string; result: string; error?: string }[] {
  return reply.results.map((r) => {
    assert.ok(r.ok, JSON.stringify(r));
    return JSON.parse(nip44.decrypt((r.result as NostrEvent).content, convKey));
  });
}

test('a user key the KeyManager cannot open fails its requests with an error response, not the job', async () => {
  const { processor, published } = processorWith(async () => {
    throw new KeyManagerUnavailableError('kms unreachable');
  });
  const reply = await processor('n46.a', {
    type: 'nip46',
    replyTo: 'ingest-1',
    items: [
      request('s1', 'sign_event', [JSON.stringify({ kind: 1, content: 'x', tags: [], created_at: 1 })]),
      request('p1', 'ping', []),
    ],
  });
  assert.deepEqual(responses(reply), [
    { id: 's1', result: '', error: 'user key unavailable: key manager unavailable' },
    { id: 'p1', result: 'pong' },
  ]);
  assert.equal(published.length, 0, 'the reply is handed back for the shard worker to complete and publish');
});

test('parameters are checked as on the HTTP door: an empty nip44 plaintext is refused', async () => {
  const { processor } = processorWith(async () => ({ secretKey: new Uint8Array(userSk), pubkey: auth.userPubkey }));
  const reply = await processor('n46.b', {
    type: 'nip46',
    replyTo: 'ingest-1',
    items: [request('e1', 'nip44_encrypt', [peerPk, '']), request('e2', 'nip44_encrypt', [peerPk, 'hi'])],
  });
  const [empty, ok] = responses(reply);
  assert.deepEqual(empty, { id: 'e1', result: '', error: 'nip44_encrypt: plaintext must not be empty' });
  assert.equal(ok!.error, undefined);
  assert.equal(nip44.decrypt(ok!.result, nip44.getConversationKey(userSk, peerPk)), 'hi');
});
