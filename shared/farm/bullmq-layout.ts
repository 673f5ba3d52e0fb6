// The one place Keyfarm depends on how BullMQ lays a queue out in Redis (not part of its public API):
// admission's reconcile (admission.lua) must tell, in the same atomic step as the count it rebuilds,
// whether a job exists and whether it has finished, which no public call can do inside a script.
// test/integration/bullmq-layout.test.ts checks every fact below against the installed BullMQ, so an
// upgrade that changes them fails that test instead of silently breaking reconcile.
import type { ShardNames } from '../shard.js';

/** The prefix of a shard's job hashes: a job's hash is this plus its id. */
export function jobKeyPrefix(names: ShardNames, shard: number): string {
  return `${names.queuePrefix(shard)}:${names.queue(shard)}:`;
}

/** Field of a job's hash that every added job has (its creation time, ms). */
export const JOB_CREATED_FIELD = 'timestamp';

/** Field of a job's hash set once it completed or finally failed (ms). */
export const JOB_FINISHED_FIELD = 'finishedOn';
