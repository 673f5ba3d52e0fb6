-- The farm's recorded shard count (shared/farm/shard-count.ts). KEYS[1] the record.
-- ARGV[1] = 'change'  ARGV[2] the count expected ('' for none), ARGV[3] the new count
--           -> {1, new} when the record was the expected one and is now the new one, else {0, the record or ''}
-- ARGV[1] = 'workers' KEYS[1] the workers' members zset (score = expiry ms, by this server's clock)
--           -> how many members are live
local op = ARGV[1]

if op == 'change' then
  local recorded = redis.call('GET', KEYS[1]) or ''
  if recorded ~= ARGV[2] then return {0, recorded} end
  redis.call('SET', KEYS[1], ARGV[3])
  return {1, ARGV[3]}
end

if op == 'workers' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
end

return redis.error_reply('shard-count: unknown op ' .. tostring(op))
