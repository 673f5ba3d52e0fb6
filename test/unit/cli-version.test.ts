// `keyfarm --version` prints the package's version and nothing else, without starting anything.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { KEYFARM_CLI, PROJECT_ROOT } from '../support/paths.js';

describe('keyfarm --version', () => {
  it('prints the version of package.json', () => {
    const { version } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      assert.equal(execFileSync(process.execPath, [KEYFARM_CLI, flag], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH } }), `${version}\n`);
    }
  });
});
