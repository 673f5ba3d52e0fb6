-- One request counted in a fixed window: KEYS[1] the client's counter, ARGV[1] the window in ms.
-- Returns {requests in this window, ms until it ends}.
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
