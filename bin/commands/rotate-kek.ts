// keyfarm rotate-kek: moves every key row, and the farm payload key, to the active KEK while the farm keeps running.
//   local master key: --generate or --new-master-key FILE installs the new key first (the old one is kept
//     in the keyring beside MASTER_KEY_PATH, so every running process still unwraps under it);
//   Cloud KMS: run with GCP_KMS_KEY set to the new key (deploy that to the farm first).
// Without either option it re-wraps whatever is not under the active KEK: how a killed run is finished.
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../runtime.js';
import { createKeyManager } from '../../shared/custody/index.js';
import { installMasterKey, type NewMasterKey } from '../../shared/custody/local-key-manager-install.js';
import { rotateKek, type RotationResult } from '../../shared/custody/rotate-kek.js';
import { commandLogger, openCommandDatabase } from './database.js';
import { createProgress } from './progress.js';

export const ROTATE_KEK_USAGE = `usage: keyfarm rotate-kek [--generate | --new-master-key FILE] [--batch-size N] [--pause-ms MS] [--settle-ms MS]
  --generate             local KEK: make a new random master key and make it the active one
  --new-master-key FILE  local KEK: make the 32-byte key in FILE (mode 0600) the active one
  --batch-size N         rows per transaction (default 100)
  --pause-ms MS          wait between batches (default 0)
  --settle-ms MS         run at least this long so running processes pick up a new key (default 3000
                         with --generate/--new-master-key, else 0)
  With GCP_KMS_KEY set, the target is that key: set it to the new key everywhere first.
  Rerun after an interruption: rows already under the active KEK are skipped.`;

const MAX_FAILURES_SHOWN = 20;

function positiveInt(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

function summary(result: RotationResult): string {
  const lines = [`re-wrapped ${result.rewrapped} keys, ${result.alreadyCurrent} already current`];
  if (result.payloadKeysRewrapped > 0)
    lines.push(
      `re-wrapped the farm payload key (${result.payloadKeysRewrapped} row${result.payloadKeysRewrapped === 1 ? '' : 's'})`,
    );
  if (result.failed.length > 0) {
    lines.push(`${result.failed.length} keys could not be re-wrapped and stay under their old KEK:`);
    for (const f of result.failed.slice(0, MAX_FAILURES_SHOWN))
      lines.push(`  ${f.id.startsWith('payload_keys/') ? '' : 'key '}${f.id} (KEK ${f.kekId}): ${f.reason}`);
    if (result.failed.length > MAX_FAILURES_SHOWN)
      lines.push(`  … and ${result.failed.length - MAX_FAILURES_SHOWN} more`);
  }
  for (const [kek, n] of [...result.byKek].sort())
    lines.push(`KEK ${kek}: ${n} keys${kek === result.kekId ? ' (active)' : ''}`);
  return `${lines.join('\n')}\n`;
}

export async function runRotateKek(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      generate: { type: 'boolean', default: false },
      'new-master-key': { type: 'string' },
      'batch-size': { type: 'string' },
      'pause-ms': { type: 'string' },
      'settle-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${ROTATE_KEK_USAGE}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}\n${ROTATE_KEK_USAGE}`);
  if (values.generate && values['new-master-key']) throw new Error('give --generate or --new-master-key, not both');
  const newKey: NewMasterKey | undefined = values.generate
    ? { generate: true }
    : values['new-master-key'] !== undefined
      ? { file: values['new-master-key'] }
      : undefined;
  const batchSize = positiveInt('batch-size', values['batch-size'], 100, 1);
  const pauseMs = positiveInt('pause-ms', values['pause-ms'], 0, 0);
  const settleMs = positiveInt('settle-ms', values['settle-ms'], newKey ? 3000 : 0, 0);

  const config = loadConfigOrExit();
  const log = (line: string) => process.stderr.write(`rotate-kek: ${line}\n`);
  if (newKey) {
    if (config.GCP_KMS_KEY) {
      throw new Error(
        '--generate and --new-master-key are for the local master key; with GCP_KMS_KEY set, set it to the new Cloud KMS key instead',
      );
    }
    const installed = await installMasterKey(config.MASTER_KEY_PATH, newKey);
    if (installed.changed) {
      log(
        `new master key ${installed.kekId} is active at ${config.MASTER_KEY_PATH}; the previous one (${installed.previousKekId}) is kept in ${installed.keyringFile}`,
      );
      log('back up the master key file and its keyring directory now: rows move to the new key from here on');
    } else {
      log(`master key ${installed.kekId} is already the active one; finishing the rotation`);
    }
  }

  const database = await openCommandDatabase(config, commandLogger(config, 'rotate-kek'));
  const km = await createKeyManager(config);
  try {
    log(`re-wrapping every key not under ${km.kekId} in ${database.label} (batches of ${batchSize})`);
    const progress = createProgress({ label: 'rotate-kek', unit: 'keys re-wrapped' });
    const result = await rotateKek({
      db: database.db,
      km,
      batchSize,
      pauseMs,
      settleMs,
      onProgress: (p) => progress.update(p.done, p.total),
    });
    progress.finish();
    process.stdout.write(summary(result));
    if (result.failed.length > 0) return 1;
    const retired = [...result.byKek.keys()].filter((k) => k !== result.kekId);
    if (retired.length === 0) {
      log(`no key is left under an older KEK. Keep the older KEKs as long as backups taken before now may be restored`);
    }
    return 0;
  } finally {
    await km.close();
    await database.close();
  }
}
