// The linter and formatter (Biome, biome.jsonc) pass over the whole code base: `npx biome check --write .`
// fixes most of what this test reports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../support/paths.js';

test('biome ci: lint rules and formatting hold in every file', () => {
  const biome = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'biome');
  const run = spawnSync(biome, ['ci', '--colors=off', '--max-diagnostics=20', '.'], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(run.status, 0, `biome ci found problems:\n${run.stdout}\n${run.stderr}`);
});
