-- The state of one shard for the metrics, read in one step. Every key of a shard shares its hash tag.
-- KEYS[1] the item count (ShardNames.items), KEYS[2] the BullMQ wait list, KEYS[3] the active list,
-- KEYS[4] the lease (ShardNames.lease); ARGV[1] the prefix of the shard's job hashes.
-- BullMQ pushes new jobs on the left and takes them from the right, so each list's oldest job is its last.
-- -> {items, created-at ms of the oldest job waiting or running (0: none), 1 if a worker holds the lease}
local items = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = 0
for i = 2, 3 do
  local id = redis.call('LINDEX', KEYS[i], -1)
  if id then
    local ts = tonumber(redis.call('HGET', ARGV[1] .. id, 'timestamp') or '0')
    if ts and ts > 0 and (oldest == 0 or ts < oldest) then oldest = ts end
  end
end
return {items, oldest, redis.call('EXISTS', KEYS[4])}
