// `keyfarm --version` (and -v) prints package.json's version and nothing else, without settings or servers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { KEYFARM_CLI, PROJECT_ROOT } from '../support/paths.js';

const { version } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

describe('keyfarm --version', () => {
  for (const flag of ['--version', '-v']) {
    it(`${flag} prints the package version`, () => {
      // A setting that would stop any role's start: the version needs none of them.
      const out = execFileSync(process.execPath, [KEYFARM_CLI, flag], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, PORT: 'not-a-port' },
      });
      assert.match(version, /^\d+\.\d+\.\d+/);
      assert.equal(out, `${version}\n`);
    });
  }
});
