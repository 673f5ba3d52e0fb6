// Where the test suite keeps its files, resolved from the project root (tests run from dist/test/...).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)));
export const ARTIFACTS_DIR = path.join(PROJECT_ROOT, 'test-artifacts');
/** Every log the suite writes; the secret scan reads all of it. */
export const LOG_DIR = path.join(ARTIFACTS_DIR, 'logs');
/** One file per test file listing the secrets it made (JSON strings, one a line). */
export const SECRETS_DIR = path.join(ARTIFACTS_DIR, 'secrets');
/** Data of the suite's embedded services and of the Keyfarm processes under test. */
export const TEST_DATA_DIR = path.join(PROJECT_ROOT, '.data', 'test');
export const KEYFARM_CLI = path.join(PROJECT_ROOT, 'dist', 'bin', 'keyfarm.js');

/**
 * A name for the running test file ("unit-accounts.test"): node's runner starts one process per file, so
 * argv[1] is the file. Used to name its logs and secrets file.
 */
export function currentTestName(): string {
  const script = process.argv[1];
  if (!script) return 'unknown';
  const rel = path.relative(path.join(PROJECT_ROOT, 'dist', 'test'), script);
  const name = rel.startsWith('..') ? path.basename(script) : rel;
  return name.replace(/\.js$/, '').replace(/[^\w.-]+/g, '-');
}
