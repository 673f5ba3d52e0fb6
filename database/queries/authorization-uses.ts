import type { Queryable } from '../pool.js';

// The row is locked while its count is tested and raised, so concurrent requests on every process and
// both doors take at most the uses left. A use refused is not counted.
const TAKE_USE = {
  name: 'keyfarm-take-authorization-use',
  text: `INSERT INTO authorization_uses AS u (authorization_id, taken) VALUES ($1, 1)
     ON CONFLICT (authorization_id) DO UPDATE SET taken = u.taken + 1 WHERE u.taken < $2
     RETURNING taken`,
};

/** Takes one of the authorization's `max` uses of its policy; false when they are all taken. */
export async function takeAuthorizationUse(db: Queryable, authorizationId: string, max: number): Promise<boolean> {
  if (!(max >= 1)) return false;
  const r = await db.query({ ...TAKE_USE, values: [authorizationId, max] });
  return r.rowCount === 1;
}
