// An in-process Keyfarm (api and/or workers) over a fresh database and Redis prefix, for integration tests.
import { migrate } from '../../database/migrate.js';
import { startRoles, type RoleSet } from '../../bin/roles.js';
import type { RelayIngest } from '../../relay-ingest/index.js';
import { prepareRuntime, type Runtime } from '../../bin/runtime.js';
import { createKeyManager } from '../../shared/custody/index.js';
import { parseConfig, type Config } from '../../shared/config.js';
import { baseTestEnv, createTestDatabase } from './env.js';
import { testLogger } from './logs.js';
import { recordStoredKeys } from './stored-keys.js';

export interface TestFarm {
  url: string;
  config: Config;
  rt: Runtime;
  env: Record<string, string>;
  /** The farm's relay-ingest, when it runs one. */
  relayIngest?: RelayIngest;
  /** Stops the roles, records every key its database holds for the secret scan, then drops the database. */
  stop(): Promise<void>;
}

export async function startTestFarm(
  name: string,
  overrides: Record<string, string> = {},
  roles: RoleSet = { api: true, workers: true },
): Promise<TestFarm> {
  const database = await createTestDatabase();
  const env: Record<string, string> = baseTestEnv({ DATABASE_URL: database.url, PORT: '0', ...overrides });
  const config = parseConfig(env);
  const rt = await prepareRuntime('all', config, testLogger(name));
  await migrate(rt.db, rt.logger);
  const running = await startRoles(rt, roles).catch(async (err: Error) => {
    await rt.db.end();
    await database.drop().catch(() => undefined);
    throw err;
  });
  return {
    url: running.api?.url ?? '',
    config,
    rt,
    env,
    relayIngest: running.relayIngest,
    async stop() {
      await running.stop();
      try {
        const keyManager = await createKeyManager(config);
        try {
          await recordStoredKeys(rt.db, keyManager);
        } finally {
          await keyManager.close();
        }
      } finally {
        await rt.db.end();
        await database.drop().catch(() => undefined);
      }
    },
  };
}
