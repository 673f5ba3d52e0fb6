// Runs last in the suite (node's runner sorts files: dist/test/zz-* comes after unit/ and integration/).
// Every secret a test recorded must be absent from every log the suite wrote, in every obvious encoding,
// and so must the generated passwords of the suite's embedded PostgreSQL and Redis (read from .data/test)
// and, in cluster mode, of its Redis Cluster (recorded by test/support/redis-cluster-cli.ts).
// Recorded secrets include every key the suite's farms held (server-generated bunker and user keys too):
// test farms and the tests that run Keyfarm processes unseal and record them before dropping their
// databases (test/support/stored-keys.ts).
// scripts/test.sh sets KEYFARM_TEST_SUITE=1: then an empty scan means the recording broke, and fails.
// Run alone, with nothing recorded yet, there is nothing to check and the test says so.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { LOG_DIR, PROJECT_ROOT, SECRETS_DIR, TEST_DATA_DIR } from './support/paths.js';
import {
  describeLeak,
  listFiles,
  readEmbeddedPasswords,
  readRecordedSecrets,
  scanFiles,
} from './support/secret-scan.js';

const inSuite = process.env.KEYFARM_TEST_SUITE === '1';

test('no secret a test made appears in any log of the suite', (t) => {
  const logs = listFiles(LOG_DIR);
  const recorded = readRecordedSecrets(SECRETS_DIR);
  const serverPasswords = readEmbeddedPasswords(TEST_DATA_DIR);
  const secrets = [...recorded, ...serverPasswords];
  if (inSuite) {
    assert.ok(logs.length > 0, `the suite wrote no logs under ${LOG_DIR}: nothing was scanned`);
    assert.ok(recorded.length > 0, `no test recorded a secret under ${SECRETS_DIR}: nothing was scanned for`);
    assert.equal(
      serverPasswords.length,
      2,
      `the suite's embedded servers have no password files under ${TEST_DATA_DIR}/credentials`,
    );
    // Cluster mode: the suite's Redis Cluster password is one of the secrets looked for.
    const clusterPassword = process.env.KEYFARM_TEST_REDIS_PASSWORD;
    if (clusterPassword)
      assert.ok(
        recorded.some((s) => s.value === clusterPassword),
        "the suite's Redis Cluster password was not recorded",
      );
  } else if (logs.length === 0 || secrets.length === 0) {
    t.diagnostic('run alone with no logs or no recorded secrets: nothing to scan (the suite run requires both)');
  }
  const bytes = logs.reduce((sum, f) => sum + statSync(f).size, 0);
  const leaks = scanFiles(logs, secrets);
  t.diagnostic(`scanned ${logs.length} log files (${bytes} bytes) for ${secrets.length} recorded secrets`);
  assert.equal(
    leaks.length,
    0,
    `secrets found in logs:\n${leaks.map((l) => describeLeak(l, PROJECT_ROOT)).join('\n')}`,
  );
});
