// The BullMQ Queue of each shard, made once per process role on one connection (the ingress side: the
// HTTP RPC client and relay-ingest add jobs and read stored results through these).
import { Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import type { ShardNames } from '../shard.js';

export class ShardQueues {
  private readonly queues = new Map<number, Queue>();

  constructor(
    private readonly connection: RedisClient,
    private readonly names: ShardNames,
    private readonly onError: (err: Error, shard: number) => void,
  ) {}

  get(shard: number): Queue {
    let q = this.queues.get(shard);
    if (!q) {
      q = new Queue(this.names.queue(shard), { connection: this.connection, prefix: this.names.queuePrefix(shard) });
      q.on('error', (err) => this.onError(err, shard));
      this.queues.set(shard, q);
    }
    return q;
  }

  async close(): Promise<void> {
    const open = [...this.queues.values()];
    this.queues.clear();
    await Promise.allSettled(open.map((q) => q.close()));
  }
}
