// The passwords, session and access tokens the bench made (recorded by test/support/client.ts as it
// makes them) and the generated passwords of the embedded servers must appear in no log the farm wrote
// under load. The record is removed afterwards so
// it does not pile up beside the test suite's own.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SECRETS_DIR, currentTestName } from '../test/support/paths.js';
import {
  describeLeak,
  listFiles,
  readEmbeddedPasswords,
  scanFiles,
  type RecordedSecret,
} from '../test/support/secret-scan.js';
import { PROJECT_ROOT } from './farm-process.js';

/** The file this process's recordSecret calls append to. */
export function recordedSecretsFile(): string {
  return path.join(SECRETS_DIR, `${currentTestName()}.txt`);
}

export function forgetRecordedSecrets(): void {
  rmSync(recordedSecretsFile(), { force: true });
}

export interface SecretCheck {
  logFiles: number;
  secrets: number;
  leaks: string[];
}

/** `dataDir`: the embedded servers' data dir, whose password files are scanned for too. */
export function scanLogsForSecrets(logDir: string, dataDir: string): SecretCheck {
  const file = recordedSecretsFile();
  const recorded: RecordedSecret[] = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l, i) => ({ source: path.basename(file), index: i + 1, value: JSON.parse(l) as string }))
    : [];
  const secrets = [...recorded, ...readEmbeddedPasswords(dataDir)];
  const logs = listFiles(logDir);
  return {
    logFiles: logs.length,
    secrets: secrets.length,
    leaks: scanFiles(logs, secrets).map((l) => describeLeak(l, PROJECT_ROOT)),
  };
}
