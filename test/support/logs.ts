// The suite's logs and the secrets its tests make. Every log goes to a file under test-artifacts/logs/
// and every secret a test makes is recorded, so test/zz-secret-scan.test.ts can prove that no secret
// reached any log.
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createLogger, type Logger } from '../../shared/logger.js';
import { LOG_DIR, SECRETS_DIR, currentTestName } from './paths.js';

/**
 * Shorter values are not recorded: scanning logs for them would match ordinary words. Keyfarm refuses
 * passwords under 8 characters, and keys and tokens are far longer.
 */
export const MIN_SECRET_LENGTH = 8;

const recorded = new Set<string>();

function safeName(name: string): string {
  return name.replace(/[^\w.-]+/g, '-');
}

/** The log file for `name` within the running test file: test-artifacts/logs/<test file>--<name>.log */
export function testLogFile(name: string): string {
  mkdirSync(LOG_DIR, { recursive: true });
  return path.join(LOG_DIR, `${currentTestName()}--${safeName(name)}.log`);
}

/** A pino logger (Keyfarm's own configuration, redaction included) writing synchronously to testLogFile(name). */
export function testLogger(name: string, level = 'debug'): Logger {
  const destination = pino.destination({ dest: testLogFile(name), sync: true, mkdir: true, append: true });
  return createLogger({ level, role: name, destination });
}

/** Notes a secret a test made (password, nsec, hex key, token...) for the secret scan. Returns the value. */
export function recordSecret(value: string): string {
  if (value.length < MIN_SECRET_LENGTH || recorded.has(value)) return value;
  recorded.add(value);
  mkdirSync(SECRETS_DIR, { recursive: true });
  appendFileSync(path.join(SECRETS_DIR, `${currentTestName()}.txt`), `${JSON.stringify(value)}\n`, { mode: 0o600 });
  return value;
}

/** Replaces every secret this test file recorded with [secret], for text a test is about to print. */
export function maskSecrets(text: string): string {
  let masked = text;
  for (const secret of recorded) masked = masked.replaceAll(secret, '[secret]');
  return masked;
}
