// Bull Board over every shard queue of the farm. The api mounts it (api/routes/admin.ts) behind the admin
// password; in read-only mode the board shows queues and jobs but refuses every action (retry, clean, ...).
// Sealed content (RPC calls and results, shared/farm/jobs.ts) is shown as "[sealed]", never as ciphertext.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyPluginCallback } from 'fastify';
import type { RedisClient } from '../shared/redis.js';
import { isSealed } from '../shared/farm/payload-seal.js';
import type { ShardNames } from '../shared/shard.js';

export const REDACTED = '[sealed]';

/** `value` with every sealed string in it replaced by REDACTED (a job's data or return value is plain JSON). */
export function redactSealed(value: unknown): unknown {
  if (isSealed(value)) return REDACTED;
  if (Array.isArray(value)) return value.map(redactSealed);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSealed(v)]));
  }
  return value;
}

function redactedAdapter(queue: Queue, readOnly: boolean): BullMQAdapter {
  const adapter = new BullMQAdapter(queue, { readOnlyMode: readOnly });
  adapter.setFormatter('data', redactSealed);
  adapter.setFormatter('returnValue', redactSealed);
  return adapter;
}

export interface ShardBoardOptions {
  names: ShardNames;
  shardCount: number;
  /** A command connection; the board's queues only read and (when writable) act on jobs. */
  connection: RedisClient;
  basePath: string;
  readOnly: boolean;
  links?: { text: string; url: string }[];
}

export interface ShardBoard {
  plugin: FastifyPluginCallback;
  queueNames: string[];
  close(): Promise<void>;
}

export function createShardBoard(o: ShardBoardOptions): ShardBoard {
  const queues = Array.from(
    { length: o.shardCount },
    (_, shard) => new Queue(o.names.queue(shard), { connection: o.connection, prefix: o.names.queuePrefix(shard) }),
  );
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(o.basePath);
  createBullBoard({
    queues: queues.map((q) => redactedAdapter(q, o.readOnly)),
    // @bull-board/fastify pins its own copy of @bull-board/api: same shape, separate type declarations.
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    options: {
      uiConfig: {
        boardTitle: o.readOnly ? 'Keyfarm · read-only' : 'Keyfarm',
        miscLinks: o.links ?? [],
        hideDocsLink: true,
      },
    },
  });
  return {
    plugin: serverAdapter.registerPlugin() as FastifyPluginCallback,
    queueNames: queues.map((q) => q.name),
    async close() {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}
