-- Counts a NIP-46 request from a client key that is not the bunker's bound client, in fixed windows,
-- unless the client key or the bunker has used its allowance: check and count are one step, so replicas
-- racing on one key never let more through than the limit.
-- KEYS[1]: the counter of this client key at this bunker; KEYS[2]: the counter of the bunker.
-- ARGV[1]: client limit; ARGV[2]: bunker limit; ARGV[3]: window in seconds.
-- Returns 0 when counted, 1 when the client key is over its limit, 2 when the bunker is.
-- A refused request counts nowhere, and a new client key's counter is made only when the bunker has
-- room, so the keys this creates are bounded by the bunker limit.
local client = tonumber(redis.call('GET', KEYS[1]) or '0')
if client >= tonumber(ARGV[1]) then return 1 end
local bunker = tonumber(redis.call('GET', KEYS[2]) or '0')
if bunker >= tonumber(ARGV[2]) then return 2 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 0
