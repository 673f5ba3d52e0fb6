// A revoke that lands while the api is reading the token it revokes: the read (of the row as it was
// before the revoke) must not be cached, or the revoked token keeps working until the cache entry
// expires. Real farm on Redis and PostgreSQL; the api's pool is only slowed, for one read, between
// PostgreSQL's answer and the cache.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRedis } from '../../shared/redis.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { shardNamesOf } from '../support/env.js';

describe('revoke racing a token read', () => {
  let farm: TestFarm;

  before(async () => {
    farm = await startTestFarm('revoke-race', {}, { api: true, workers: true });
  });

  after(async () => {
    await farm?.stop();
  });

  it('a token revoked while its first request was reading it is refused by the next request', async () => {
    const user = await registerUser(farm.url);
    const { access_token: token } = await authorizeApp(farm.url, user.session, 'full');
    const id = (await call(farm.url, 'GET', '/api/user/sessions', undefined, user.session)).body[0]
      .authorization_id as string;

    // Hold the next token lookup after PostgreSQL has answered it, until the revoke has been broadcast.
    const db = farm.rt.db as unknown as { query: (...args: unknown[]) => Promise<unknown> };
    const realQuery = db.query.bind(db);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let readDone!: () => void;
    const read = new Promise<void>((r) => (readDone = r));
    let armed = true;
    db.query = (...args: unknown[]) => {
      // A query is its text, or a config object (a named statement) carrying it.
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (armed && typeof text === 'string' && text.includes('FROM oauth_tokens t')) {
        armed = false;
        return realQuery(...args).then(async (rows) => {
          readDone();
          await released;
          return rows;
        });
      }
      return realQuery(...args);
    };
    const listener = createRedis(farm.rt.redisUrl, { enableAutoPipelining: false });
    try {
      const broadcast = new Promise<void>((resolve) =>
        listener.on('message', (_c: string, m: string) => m.includes(id) && resolve()),
      );
      await listener.subscribe(shardNamesOf(farm.config).evictChannel());

      const first = rpc(farm.url, token, 'ping');
      await read; // the live row is read, not yet cached
      assert.equal(
        (await call(farm.url, 'POST', '/api/user/sessions/revoke', { authorization_id: id }, user.session)).status,
        200,
      );
      await broadcast;
      await new Promise((r) => setTimeout(r, 100)); // the api's subscriber has it too
      release();
      assert.equal((await first).status, 200, 'the request that read before the revoke is answered');

      const next = await rpc(farm.url, token, 'sign_event', [
        { kind: 1, content: 'after revoke', tags: [], created_at: 1 },
      ]);
      assert.equal(
        next.status,
        403,
        'the revoked token is refused at once, not served from a cache filled by the older read',
      );
    } finally {
      db.query = realQuery;
      release();
      await listener.quit();
    }
  });
});
