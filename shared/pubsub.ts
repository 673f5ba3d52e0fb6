// Two kinds of pub/sub messages, the same on a single Redis and on a Redis Cluster:
// - direct: a reply for one process, on that process's own channel. On a cluster it goes by sharded
//   pub/sub (SPUBLISH/SSUBSCRIBE), so it costs the one shard that owns the channel's slot, not a
//   broadcast over the cluster bus to every node.
// - broadcast: announcements every process must hear (revocations, key changes, new bunkers). Plain
//   PUBLISH, which a cluster forwards to every node, so a subscriber on any node hears it. A revocation
//   must be heard before its request is answered: publishBroadcast.
import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './redis.js';

/** Publishes on a direct channel; resolves with the number of subscribers that got it. */
export function publishDirect(redis: RedisClient, channel: string, message: string): Promise<number> {
  return (isCluster(redis) ? redis.spublish(channel, message) : redis.publish(channel, message)) as Promise<number>;
}

/**
 * Subscribes a subscriber connection to direct channels: `onMessage` gets each message on them. On a
 * cluster each channel is subscribed on its own (they may live in different slots, on different nodes).
 */
export async function subscribeDirect(
  subscriber: RedisClient,
  channels: readonly string[],
  onMessage: (message: string) => void,
): Promise<void> {
  const mine = new Set(channels);
  if (isCluster(subscriber)) {
    subscriber.on('smessage', (ch: string, message: string) => {
      if (mine.has(ch)) onMessage(message);
    });
    await Promise.all(channels.map((channel) => subscriber.ssubscribe(channel)));
    return;
  }
  subscriber.on('message', (ch: string, message: string) => {
    if (mine.has(ch)) onMessage(message);
  });
  await subscriber.subscribe(...channels);
}

/**
 * Publishes a broadcast that every subscriber has received when this resolves. A single Redis queues it
 * to every subscriber before it answers. A cluster node does so for its own subscribers only, and
 * forwards it to the other nodes over the cluster bus, later (tens of ms on a loaded machine): so on a
 * cluster it is published on every node the client knows (subscribers connect to those), and each
 * subscriber hears it once per node. Receivers must be idempotent. Resolves once one node took it (a
 * failed node's subscribers have lost their link, and caches that rely on it drop what they hold).
 */
export async function publishBroadcast(redis: RedisClient, channel: string, message: string): Promise<void> {
  const nodes = isCluster(redis) ? redis.nodes('all') : [];
  // A single Redis, or a cluster client that has not learnt its nodes yet (it queues the command).
  if (nodes.length === 0) {
    await redis.publish(channel, message);
    return;
  }
  const sent = await Promise.allSettled(nodes.map((node) => node.publish(channel, message)));
  if (!sent.some((s) => s.status === 'fulfilled')) throw (sent[0] as PromiseRejectedResult).reason;
}

/** ioredis's cluster subscriber: one node connection, replaced (and resubscribed) when its node fails. */
interface ClusterBroadcastSubscriber {
  getInstance(): Redis | null;
  lastActiveSubscriber?: Redis;
}

/** How often a cluster's broadcast subscription is checked (ioredis tells nothing when it moves). */
const CLUSTER_LINK_POLL_MS = 50;

/**
 * Calls `onLink(false)` when the broadcast subscription of `subscriber` drops and `onLink(true)` when it
 * is back (resubscribed): messages published meanwhile were lost, so caches keyed on them must not be
 * trusted. On a single Redis, the connection's own close/ready; on a cluster, the connection ioredis
 * keeps to one node (a new node is chosen when it fails). Returns a function that stops watching.
 */
export function watchBroadcastLink(subscriber: RedisClient, onLink: (linked: boolean) => void): () => void {
  if (!isCluster(subscriber)) {
    const up = () => onLink(true);
    const down = () => onLink(false);
    subscriber.on('ready', up);
    subscriber.on('close', down);
    return () => {
      subscriber.off('ready', up);
      subscriber.off('close', down);
    };
  }
  const inner = (subscriber as unknown as { subscriber: ClusterBroadcastSubscriber }).subscriber;
  let linked: boolean | undefined;
  const check = () => {
    const instance = inner.getInstance();
    const now = instance !== null && instance.status === 'ready' && inner.lastActiveSubscriber === instance;
    if (now !== linked) {
      linked = now;
      onLink(now);
    }
  };
  check();
  const timer = setInterval(check, CLUSTER_LINK_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
