-- The state of one shard for the metrics, read in one step from its queue (shard-queue.lua; every key of
-- a shard shares its hash tag). KEYS[1] the meter (ShardNames.meter: `count`, items waiting or running),
-- KEYS[2] the stream of jobs (ShardNames.jobs), KEYS[3] the lease (ShardNames.lease).
-- -> {items, added-at ms of the oldest job waiting or running (0: none), 1 if a worker holds the lease}
local items = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local oldest = 0
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if first then oldest = tonumber(string.match(first[1], '^(%d+)-')) or 0 end
return {items, oldest, redis.call('EXISTS', KEYS[3])}
