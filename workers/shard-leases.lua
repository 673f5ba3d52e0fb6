-- Shard ownership. Times come from the Redis server clock, so members on different machines agree.
-- ARGV[1] = 'heartbeat'  KEYS[1] members zset (score = expiry ms)  ARGV[2] member id, ARGV[3] ttl ms
--           -> the live members (own entry refreshed, expired ones removed)
-- ARGV[1] = 'renew'      KEYS[1] a lease  ARGV[2] owner id, ARGV[3] ttl ms -> 1 if still ours and extended, else 0
-- ARGV[1] = 'release'    KEYS[1] a lease  ARGV[2] owner id               -> 1 if it was ours and is gone, else 0
local op = ARGV[1]

if op == 'heartbeat' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  return redis.call('ZRANGE', KEYS[1], 0, -1)
end

if op == 'renew' then
  if redis.call('GET', KEYS[1]) == ARGV[2] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  return 0
end

if op == 'release' then
  if redis.call('GET', KEYS[1]) == ARGV[2] then
    return redis.call('DEL', KEYS[1])
  end
  return 0
end

return redis.error_reply('shard-leases: unknown op ' .. tostring(op))
