// Real accounts for the load: each user registers over HTTP (argon2id and all) and authorizes the bench
// app through the JSON OAuth path, ending with an access token. Registrations run a few at a time.
import { writeFileSync } from 'node:fs';
import { authorizeApp, registerUser } from '../test/support/client.js';

export interface BenchUser {
  pubkey: string;
  accessToken: string;
}

export const BENCH_CLIENT_ID = 'keyfarm-bench';

async function createUser(base: string): Promise<BenchUser> {
  const user = await registerUser(base);
  const auth = await authorizeApp(base, user.session, 'full', BENCH_CLIENT_ID);
  return { pubkey: user.pubkey, accessToken: auth.access_token };
}

export async function seedUsers(
  base: string,
  count: number,
  concurrency: number,
  onProgress: (done: number) => void = () => {},
): Promise<BenchUser[]> {
  const users: BenchUser[] = new Array(count);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      users[i] = await createUser(base);
      done++;
      if (done % 100 === 0 || done === count) onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return users;
}

/** One access token a line, for the wrk script; readable by this user only. */
export function writeTokenFile(file: string, users: readonly BenchUser[]): void {
  // With no users (a NIP-46-only run) the no-op route's load still needs a token line; that route reads none.
  const tokens = users.length > 0 ? users.map((u) => u.accessToken) : ['no-user'];
  writeFileSync(file, `${tokens.join('\n')}\n`, { mode: 0o600 });
}
