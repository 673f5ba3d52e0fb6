// Sequential sign_event calls from the bench process, outside the timed load: the cold-key latency
// sample and the check that the farm's signatures are valid. One request at a time, so a Node client
// is fine here (it is the load that must not come from Node).
import { verifyEvent, type NostrEvent } from 'nostr-tools/pure';
import { rpc } from '../test/support/client.js';
import type { BenchUser } from './seed-users.js';
import { percentile, round } from './stats.js';

export interface SignOutcome {
  ms: number;
  /** Why the answer is not a valid signature by this user over this event; undefined when it is. */
  problem?: string;
}

let probeSeq = 0;

/** One timed sign_event, its answer checked with verifyEvent and against the user and the event sent. */
export async function signAndCheck(base: string, user: BenchUser): Promise<SignOutcome> {
  const event = {
    kind: 1,
    content: `keyfarm bench probe ${probeSeq++}`,
    tags: [],
    created_at: Math.floor(Date.now() / 1000),
  };
  const start = performance.now();
  const res = await rpc(base, user.accessToken, 'sign_event', [event]);
  const ms = performance.now() - start;
  if (res.status !== 200) return { ms, problem: `HTTP ${res.status} ${JSON.stringify(res.body?.error ?? res.body)}` };
  const signed = res.body?.result as NostrEvent | undefined;
  if (!signed || typeof signed !== 'object') return { ms, problem: 'no event in the result' };
  if (signed.pubkey !== user.pubkey) return { ms, problem: 'signed by another pubkey' };
  if (signed.content !== event.content || signed.created_at !== event.created_at)
    return { ms, problem: 'not the event sent' };
  if (!verifyEvent(signed)) return { ms, problem: 'invalid id or signature' };
  return { ms };
}

export interface SampleCheck {
  checked: number;
  valid: number;
  /** Distinct problems with how often each occurred. */
  problems: Record<string, number>;
}

function tally(outcomes: SignOutcome[]): SampleCheck {
  const problems: Record<string, number> = {};
  for (const o of outcomes) if (o.problem) problems[o.problem] = (problems[o.problem] ?? 0) + 1;
  return { checked: outcomes.length, valid: outcomes.filter((o) => !o.problem).length, problems };
}

/** Signs once for `count` users spread over the whole list and verifies every answer. */
export async function verifySample(base: string, users: readonly BenchUser[], count: number): Promise<SampleCheck> {
  const outcomes: SignOutcome[] = [];
  const step = users.length / Math.min(count, users.length);
  for (let i = 0; i < Math.min(count, users.length); i++)
    outcomes.push(await signAndCheck(base, users[Math.floor(i * step)]!));
  return tally(outcomes);
}

export interface ColdKeyLatency {
  users: number;
  /** First sign_event of a user whose key is not in the worker cache (its token already cached by the api). */
  coldMs: { p50: number; p95: number; p99: number; max: number };
  /** The same user's second sign_event, right after. */
  warmMs: { p50: number; p95: number; p99: number; max: number };
  check: SampleCheck;
}

const summary = (ms: number[]) => ({
  p50: round(percentile(ms, 50), 2),
  p95: round(percentile(ms, 95), 2),
  // The target is a p99; with the default 50 users it is about the second-slowest.
  p99: round(percentile(ms, 99), 2),
  max: round(Math.max(...ms), 2),
});

/**
 * For each cohort user in turn: `ping` (the api caches the token; unless `ping` is false), then a timed
 * cold sign_event, then a timed warm one. `jitUsers` sign first so the code paths are compiled. With key
 * prefetch on (KEY_PREFETCH_MAX_INFLIGHT), the ping's token lookup also hints the key to its worker.
 */
export async function measureColdKeys(
  base: string,
  cohort: readonly BenchUser[],
  jitUsers: readonly BenchUser[],
  { ping = true }: { ping?: boolean } = {},
): Promise<ColdKeyLatency> {
  for (const u of jitUsers) {
    await signAndCheck(base, u);
    await signAndCheck(base, u);
  }
  const cold: SignOutcome[] = [];
  const warm: SignOutcome[] = [];
  for (const u of cohort) {
    if (ping) {
      const pong = await rpc(base, u.accessToken, 'ping');
      if (pong.status !== 200)
        throw new Error(`ping failed: HTTP ${pong.status} ${JSON.stringify(pong.body?.error ?? pong.body)}`);
    }
    cold.push(await signAndCheck(base, u));
    warm.push(await signAndCheck(base, u));
  }
  return {
    users: cohort.length,
    coldMs: summary(cold.map((o) => o.ms)),
    warmMs: summary(warm.map((o) => o.ms)),
    check: tally([...cold, ...warm]),
  };
}
