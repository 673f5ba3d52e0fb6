// The secret scan's own checks: it finds a planted secret in any encoding, names file and line without the
// secret, and the logger of the suite keeps secret fields out of its files (these secrets are recorded,
// so the suite's final scan also runs over real data).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey } from 'nostr-tools/pure';
import { nsecEncode } from 'nostr-tools/nip19';
import { recordSecret, testLogFile, testLogger } from '../support/logs.js';
import { ensurePassword } from '../../shared/embedded/credentials.js';
import {
  describeLeak,
  listFiles,
  readEmbeddedPasswords,
  readRecordedSecrets,
  scanFiles,
  secretForms,
  type RecordedSecret,
} from '../support/secret-scan.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'kf-scan-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function secret(value: string, index = 1): RecordedSecret {
  return { source: 'planted.txt', index, value };
}

test('a hex secret key is looked for as nsec too, and an nsec as hex', () => {
  const key = generateSecretKey();
  const hex = bytesToHex(key);
  const nsec = nsecEncode(key);
  assert.ok(secretForms(hex).some(([form, text]) => form === 'nsec' && text === nsec));
  assert.ok(secretForms(nsec).some(([form, text]) => form === 'hex' && text === hex));
  assert.ok(secretForms(hex).some(([form, text]) => form === 'HEX' && text === hex.toUpperCase()));
  assert.deepEqual(secretForms('correct horse battery'), [['as recorded', 'correct horse battery']]);
});

test('finds a planted secret in any form, naming file and line but never the secret', () => {
  const key = generateSecretKey();
  const hex = bytesToHex(key);
  const password = 'pw-planted-in-a-log';
  const file = path.join(scratch, 'leaky.log');
  writeFileSync(
    file,
    ['{"msg":"start"}', '{"msg":"fine"}', `{"msg":"oops ${nsecEncode(key)}"}`, `{"pw":"${password}"}`].join('\n'),
  );
  writeFileSync(path.join(scratch, 'clean.log'), '{"msg":"nothing to see","password":"[redacted]"}\n');

  const leaks = scanFiles(listFiles(scratch), [secret(hex, 1), secret(password, 2)]);
  const reports = leaks.map((l) => describeLeak(l, scratch));
  assert.deepEqual(reports, [
    'leaky.log:3: secret #1 recorded in planted.txt (nsec form)',
    'leaky.log:4: secret #2 recorded in planted.txt (as recorded form)',
  ]);
  for (const report of reports) {
    for (const [, text] of [...secretForms(hex), ...secretForms(password)]) assert.ok(!report.includes(text));
  }
});

test('reads recorded secrets back as JSON lines, skipping ones too short to scan for', () => {
  const dir = path.join(scratch, 'secrets');
  const file = path.join(dir, 'a.test.txt');
  assert.deepEqual(readRecordedSecrets(dir), [], 'a missing dir holds no secrets');
  mkdirSync(dir);
  writeFileSync(file, `${JSON.stringify('with "quotes"\nand a newline')}\n${JSON.stringify('short')}\n`);
  assert.deepEqual(readRecordedSecrets(dir), [
    { source: 'a.test.txt', index: 1, value: 'with "quotes"\nand a newline' },
  ]);
});

test("reads the embedded servers' generated passwords from a data dir, and finds them in a log", () => {
  const dataDir = path.join(scratch, 'data');
  assert.deepEqual(readEmbeddedPasswords(dataDir), [], 'a data dir without servers holds no passwords');
  const postgres = ensurePassword(dataDir, 'postgres');
  const redis = ensurePassword(dataDir, 'redis');
  assert.deepEqual(
    readEmbeddedPasswords(dataDir).map((s) => [s.source, s.value]),
    [
      [path.join('credentials', 'postgres.password'), postgres],
      [path.join('credentials', 'redis.password'), redis],
    ],
  );
  const log = path.join(scratch, 'url.log');
  writeFileSync(log, `{"msg":"connecting to redis://:${redis}@127.0.0.1:6379"}\n`);
  assert.deepEqual(
    scanFiles([log], readEmbeddedPasswords(dataDir)).map((l) => describeLeak(l, scratch)),
    ['url.log:1: secret #1 recorded in credentials/redis.password (as recorded form)'],
  );
});

test("the suite's logger writes secret fields to its file as [redacted]", () => {
  const key = generateSecretKey();
  const hex = recordSecret(bytesToHex(key));
  const nsec = recordSecret(nsecEncode(key));
  const password = recordSecret(`pw-${bytesToHex(generateSecretKey()).slice(0, 20)}`);
  const logger = testLogger('redaction');
  logger.info({ nsec, secretKey: hex, password, user: { password } }, 'registering a user');
  const written = readFileSync(testLogFile('redaction'), 'utf8');
  assert.match(written, /registering a user/);
  assert.match(written, /\[redacted\]/);
  for (const value of [hex, nsec, password]) assert.ok(!written.includes(value));
});
