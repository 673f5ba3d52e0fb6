// What a backup or a restore holds, and what it does not: the KEKs its keys are wrapped under live
// outside the database (a master key file and its keyring, or Cloud KMS keys) and must be kept separately.
import type { Queryable } from '../../database/pool.js';
import { countKeysByKek } from '../../database/queries/keys.js';
import type { Config } from '../../shared/config.js';
import { keyringDirOf, localKekIds } from '../../shared/custody/local-key-manager-files.js';

export interface DatabaseSummary {
  users: number;
  keys: number;
  authorizations: number;
  byKek: Map<string, number>;
}

/** Counts of a Keyfarm database; undefined when it has no Keyfarm schema. */
export async function summarizeDatabase(db: Queryable): Promise<DatabaseSummary | undefined> {
  const { rows } = await db.query<{ present: boolean }>("SELECT to_regclass('public.users') IS NOT NULL AS present");
  if (!rows[0]?.present) return undefined;
  const counts = await db.query<{ users: number; keys: number; authorizations: number }>(
    `SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM keys) AS keys,
            (SELECT count(*)::int FROM authorizations) AS authorizations`,
  );
  return { ...counts.rows[0]!, byKek: await countKeysByKek(db) };
}

export function describeSummary(s: DatabaseSummary): string {
  const keks =
    [...s.byKek]
      .sort()
      .map(([kek, n]) => `${kek} (${n})`)
      .join(', ') || 'none';
  return `${s.users} users, ${s.keys} keys, ${s.authorizations} authorizations; keys wrapped under KEK ${keks}`;
}

/** Where the KEKs of this deployment live, which a database backup does not contain. */
export function kekWarning(config: Config): string {
  const where = config.GCP_KMS_KEY
    ? `the Cloud KMS key ${config.GCP_KMS_KEY} (and any older key named above): never destroy or disable a key version a backup still needs`
    : `the master key file ${config.MASTER_KEY_PATH} and its keyring directory ${keyringDirOf(config.MASTER_KEY_PATH)}: copy them to a safe place apart from the backups`;
  return `NOT in the backup: the KEKs. Without them the keys in it cannot be decrypted. Keep ${where}.`;
}

/** KEK ids the keys need that this deployment's local master key files do not hold (none for Cloud KMS: it cannot be checked offline). */
export async function missingLocalKeks(config: Config, byKek: Map<string, number>): Promise<string[]> {
  const needed = [...byKek.keys()].filter((k) => k.startsWith('local:'));
  if (needed.length === 0) return [];
  const held = new Set(await localKekIds(config.MASTER_KEY_PATH));
  return needed.filter((k) => !held.has(k));
}
