-- The state of one shard for the metrics, read in one step from Keyfarm's own keys (every key of a shard
-- shares its hash tag). KEYS[1] the item count (ShardNames.items), KEYS[2] the admission ledger (job id ->
-- "<items>:<admitted at ms>", one entry per job waiting or running), KEYS[3] the lease (ShardNames.lease).
-- -> {items, admitted-at ms of the oldest job waiting or running (0: none), 1 if a worker holds the lease}
local items = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = 0
for _, entry in ipairs(redis.call('HVALS', KEYS[2])) do
  local at = tonumber(string.match(entry, ':(%d+)$'))
  if at and (oldest == 0 or at < oldest) then oldest = at end
end
return {items, oldest, redis.call('EXISTS', KEYS[3])}
