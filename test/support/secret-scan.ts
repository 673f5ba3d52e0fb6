// Finds recorded secrets in log files. A secret key is looked for in each of its obvious spellings
// (hex either case, nsec, base64), so a log that printed the key in another encoding is still caught.
// Reports say where (file, line) and which recorded secret, never the secret itself.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { decode as decodeBech32, nsecEncode } from 'nostr-tools/nip19';
import { MIN_SECRET_LENGTH } from './logs.js';

export interface RecordedSecret {
  /** The secrets file that recorded it (one per test file). */
  source: string;
  /** 1-based line in that file. */
  index: number;
  value: string;
}

export interface SecretNeedle {
  secret: RecordedSecret;
  form: string;
  text: string;
}

export interface Leak {
  file: string;
  line: number;
  secret: RecordedSecret;
  form: string;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const NSEC = /^nsec1[02-9ac-hj-np-z]{58}$/;

function keyForms(bytes: Uint8Array): Array<[string, string]> {
  const hex = bytesToHex(bytes);
  const b64 = Buffer.from(bytes).toString('base64');
  return [
    ['hex', hex],
    ['HEX', hex.toUpperCase()],
    ['nsec', nsecEncode(bytes)],
    ['base64', b64],
    ['base64url', Buffer.from(bytes).toString('base64url')],
  ];
}

/** The spellings of a secret worth looking for: itself, and for a 32-byte secret key its other encodings. */
export function secretForms(value: string): Array<[form: string, text: string]> {
  const forms: Array<[string, string]> = [['as recorded', value]];
  let bytes: Uint8Array | undefined;
  if (HEX_KEY.test(value)) bytes = hexToBytes(value.toLowerCase());
  else if (NSEC.test(value)) {
    const decoded = decodeBech32(value);
    if (decoded.type === 'nsec') bytes = decoded.data;
  }
  if (bytes) for (const form of keyForms(bytes)) if (form[1] !== value) forms.push(form);
  return forms;
}

export function readRecordedSecrets(dir: string): RecordedSecret[] {
  const secrets: RecordedSecret[] = [];
  for (const file of listFiles(dir)) {
    const source = path.relative(dir, file);
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        const value: unknown = JSON.parse(line);
        if (typeof value !== 'string') throw new Error(`${source}:${i + 1}: not a JSON string`);
        if (value.length >= MIN_SECRET_LENGTH) secrets.push({ source, index: i + 1, value });
      });
  }
  return secrets;
}

/**
 * The generated passwords of the embedded servers of a data dir (`<dataDir>/credentials/*.password`,
 * shared/embedded/credentials.ts): the suite's servers are started by scripts/test.sh, not by a test, so
 * their passwords are read where they are kept rather than recorded.
 */
export function readEmbeddedPasswords(dataDir: string): RecordedSecret[] {
  const dir = path.join(dataDir, 'credentials');
  return listFiles(dir)
    .filter((file) => file.endsWith('.password'))
    .map((file) => ({ source: path.relative(dataDir, file), index: 1, value: readFileSync(file, 'utf8').trim() }))
    .filter((secret) => secret.value.length >= MIN_SECRET_LENGTH);
}

/** Every regular file under `dir`, recursively, sorted; [] when `dir` does not exist. */
export function listFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.sort().flatMap((name) => {
    const p = path.join(dir, name);
    const st = statSync(p);
    return st.isDirectory() ? listFiles(p) : st.isFile() ? [p] : [];
  });
}

/**
 * Needles are indexed by their first MIN_SECRET_LENGTH characters, so a file is read once, one lookup per
 * position, however many secrets there are.
 */
export function buildIndex(secrets: RecordedSecret[]): Map<string, SecretNeedle[]> {
  const index = new Map<string, SecretNeedle[]>();
  for (const secret of secrets) {
    for (const [form, text] of secretForms(secret.value)) {
      const key = text.slice(0, MIN_SECRET_LENGTH);
      const list = index.get(key) ?? [];
      list.push({ secret, form, text });
      index.set(key, list);
    }
  }
  return index;
}

export function scanText(
  content: string,
  index: Map<string, SecretNeedle[]>,
): Array<{ line: number; needle: SecretNeedle }> {
  const hits: Array<{ line: number; needle: SecretNeedle }> = [];
  let line = 1;
  for (let i = 0; i + MIN_SECRET_LENGTH <= content.length; i++) {
    if (content.charCodeAt(i) === 10) {
      line++;
      continue;
    }
    const candidates = index.get(content.slice(i, i + MIN_SECRET_LENGTH));
    if (!candidates) continue;
    for (const needle of candidates) if (content.startsWith(needle.text, i)) hits.push({ line, needle });
  }
  return hits;
}

/** Every place a recorded secret (in any of its forms) occurs in `files`; one report per file, line and secret. */
export function scanFiles(files: string[], secrets: RecordedSecret[]): Leak[] {
  const index = buildIndex(secrets);
  const leaks: Leak[] = [];
  for (const file of files) {
    const seen = new Set<string>();
    for (const { line, needle } of scanText(readFileSync(file, 'utf8'), index)) {
      const key = `${line}\0${needle.secret.source}\0${needle.secret.index}`;
      if (seen.has(key)) continue;
      seen.add(key);
      leaks.push({ file, line, secret: needle.secret, form: needle.form });
    }
  }
  return leaks;
}

export function describeLeak(leak: Leak, root: string): string {
  return `${path.relative(root, leak.file)}:${leak.line}: secret #${leak.secret.index} recorded in ${leak.secret.source} (${leak.form} form)`;
}
