// Every setting shared/config.ts knows is written down where people look for it: a line of .env.example
// (with its default, or empty when it has none) and a row of README.md's settings table; neither names a
// setting the config does not know.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { TSchema } from 'typebox';
import { ConfigSchema, parseConfig } from '../../shared/config.js';
import { PROJECT_ROOT } from '../support/paths.js';

const SETTINGS = ConfigSchema.properties as Record<string, TSchema>;
const NAMES = Object.keys(SETTINGS);
/** Defaults computed on the machine (CRYPTO_THREADS: its cores), written as empty in .env.example. */
const MACHINE_DEFAULTS = new Set(['CRYPTO_THREADS']);

const read = (file: string) => readFileSync(path.join(PROJECT_ROOT, file), 'utf8');

/** `# NAME=value` lines of .env.example: name -> value. */
function exampleEntries(): Map<string, string>[] {
  return [...read('.env.example').matchAll(/^# ?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => new Map([[m[1]!, m[2]!]]));
}

/** The backquoted names in the first cell of each row of README.md's settings table. */
function readmeSettingRows(): string[] {
  const readme = read('README.md');
  const section = /^## Settings\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'README.md has a "## Settings" section');
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|[-| ]+\|$/.test(l))
    .slice(1);
  assert.ok(rows.length > 20, 'the settings table has its rows');
  return rows.flatMap((row) => [...row.split('|')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
}

describe('settings are documented', () => {
  it('.env.example lists every setting once, with its default', () => {
    const entries = exampleEntries();
    const names = entries.map((e) => [...e.keys()][0]!);
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      'no setting twice',
    );
    assert.deepEqual(
      NAMES.filter((n) => !names.includes(n)),
      [],
      'settings missing from .env.example',
    );
    assert.deepEqual(
      names.filter((n) => !NAMES.includes(n)),
      [],
      '.env.example names only real settings',
    );
    for (const entry of entries) {
      const [name, value] = [...entry][0]!;
      const def = (SETTINGS[name] as { default?: unknown }).default;
      const expected = def === undefined || MACHINE_DEFAULTS.has(name) ? '' : String(def);
      assert.equal(value, expected, `${name}: the default`);
    }
  });

  it('.env.example, uncommented whole, is a valid configuration equal to the defaults', () => {
    const env = Object.fromEntries(exampleEntries().flatMap((e) => [...e]));
    assert.deepEqual(parseConfig(env), parseConfig({}));
  });

  it('README.md has a row for every setting and none for a setting the config does not know', () => {
    const named = readmeSettingRows();
    assert.deepEqual(
      NAMES.filter((n) => !named.includes(n)),
      [],
      'settings missing from the README table',
    );
    assert.deepEqual(
      named.filter((n) => !NAMES.includes(n)),
      [],
      'README rows naming unknown settings',
    );
  });
});
