// The generated passwords of the embedded servers: made once with crypto.randomBytes, kept in
// <dataDir>/credentials/<server>.password (directory 0700, files 0600, owned by the user running Keyfarm)
// and reused on every start. A missing file is made anew; the server then gets the new password.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

export type EmbeddedServerName = 'postgres' | 'redis';

/** 32 random bytes, base64url: 43 characters that need no escaping in a URL, a config file or a shell. */
const PASSWORD = /^[A-Za-z0-9_-]{43}$/;

export function credentialsDir(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'credentials');
}

export function passwordFile(dataDir: string, server: EmbeddedServerName): string {
  return path.join(credentialsDir(dataDir), `${server}.password`);
}

function privateDir(dir: string): void {
  mkdirSync(path.dirname(dir), { recursive: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700); // an existing directory keeps its mode through mkdir
}

/** The password in `file`, or undefined when there is none; the file is made private (0600) if it was not. */
function readPasswordFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP')
      throw new Error(`${file} is a symbolic link; the embedded servers' password files must be regular files`);
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) chmodSync(file, 0o600);
    const password = readFileSync(fd, 'utf8').trim();
    if (!PASSWORD.test(password)) {
      throw new Error(`${file} does not hold a password Keyfarm made; delete it and start again to have a new one set`);
    }
    return password;
  } finally {
    closeSync(fd);
  }
}

/** The password of an embedded server: the one kept under `dataDir`, or a new one written there. */
export function ensurePassword(dataDir: string, server: EmbeddedServerName): string {
  const dir = credentialsDir(dataDir);
  privateDir(dir);
  const file = passwordFile(dataDir, server);
  const existing = readPasswordFile(file);
  if (existing !== undefined) return existing;

  // Written aside and linked into place: a concurrent start sees the whole file or none.
  const password = randomBytes(32).toString('base64url');
  const tmp = path.join(dir, `.${server}.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(tmp, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = readPasswordFile(file);
    if (theirs === undefined) throw err;
    return theirs;
  } finally {
    unlinkSync(tmp);
  }
  return password;
}

export function removePassword(dataDir: string, server: EmbeddedServerName): void {
  rmSync(passwordFile(dataDir, server), { force: true });
}
