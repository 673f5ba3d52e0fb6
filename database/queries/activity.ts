import type { Queryable } from '../pool.js';

export interface ActivityRow {
  authorizationId: string;
  method: string;
  kind?: number;
  eventId?: string;
  door: 'http' | 'nip46';
  at: Date;
}

/** One multi-row insert for a batch of activity (the worker flushes about once a second). */
export async function insertActivity(db: Queryable, rows: ActivityRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO signing_activity (authorization_id, method, kind, event_id, door, created_at)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::timestamptz[])`,
    [
      rows.map((r) => r.authorizationId),
      rows.map((r) => r.method),
      rows.map((r) => r.kind ?? null),
      rows.map((r) => r.eventId ?? null),
      rows.map((r) => r.door),
      rows.map((r) => r.at),
    ],
  );
}

export interface ActivityView {
  authorization_id: string;
  application_name: string;
  method: string;
  kind: number | null;
  event_id: string | null;
  door: string;
  created_at: Date;
}

export async function recentUserActivity(db: Queryable, userId: string, limit = 50): Promise<ActivityView[]> {
  const { rows } = await db.query<ActivityView>(
    `SELECT s.authorization_id, a.application_name, s.method, s.kind, s.event_id, s.door, s.created_at
     FROM signing_activity s JOIN authorizations a ON a.id = s.authorization_id
     WHERE a.user_id = $1 ORDER BY s.created_at DESC LIMIT $2`,
    [userId, limit],
  );
  return rows;
}
