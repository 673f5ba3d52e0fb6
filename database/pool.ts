import pg from 'pg';
import { watchDbPool } from '../shared/metrics.js';

// bigint counts (activity_count) come back as numbers: they stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10));

export type Db = pg.Pool;
export type Queryable = pg.Pool | pg.PoolClient;

/** A pool counted in the keyfarm_db_pool_* gauges until it is ended. */
export function createPool(url: string, max = 10, opts: Omit<pg.PoolConfig, 'connectionString' | 'max'> = {}): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5_000,
    ...opts,
  });
  watchDbPool(pool);
  return pool;
}

export async function inTransaction<T>(db: Db, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** SQLSTATE 23505: a unique constraint refused the row. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint);
}

/** SQLSTATE 42P01: a table the query names does not exist (the schema is not migrated). */
export function isUndefinedTable(err: unknown): boolean {
  return (err as { code?: string })?.code === '42P01';
}
