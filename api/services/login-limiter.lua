-- Failed password checks, counted before the check runs, in one step with the test against the limits
-- (so parallel guesses cannot all pass the test before any is counted). See login-limiter.ts.
-- KEYS: 1 failures of this account from this client, 2 failures of this client, 3 failures of this account
--       from clients its owner never logged in from, 4 the account's known clients (zset: client -> until ms)
-- ARGV: op, now ms, client, then
--   attempt: limit, window ms for KEYS 1, 2 and 3 (a negative KEYS 3 limit: no account-wide count)
--            -> {wait ms, 1 if KEYS 3 was counted}; wait 0 means counted and allowed
--   peek:    the same arguments; tests the limits without counting -> {wait ms, 0}
--   succeed: counted account (1/0), remember ms (0: do not remember), most clients remembered
--   release: counted account (1/0)   (the check never ran: give the attempt back)
local op, now, client = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local function wait_for(key, limit)
  local count = tonumber(redis.call('GET', key) or '0')
  if count < limit then return 0 end
  local ttl = redis.call('PTTL', key)
  return ttl > 0 and ttl or 1000
end

local function count(key, window)
  if redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, window) end
end

local function uncount(key)
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end

local function is_known()
  local until_ms = redis.call('ZSCORE', KEYS[4], client)
  return until_ms ~= false and tonumber(until_ms) > now
end

if op == 'attempt' or op == 'peek' then
  local account_limit = tonumber(ARGV[8])
  local account_wide = account_limit >= 0 and not is_known()
  local wait = math.max(wait_for(KEYS[1], tonumber(ARGV[4])), wait_for(KEYS[2], tonumber(ARGV[6])))
  if account_wide then wait = math.max(wait, wait_for(KEYS[3], account_limit)) end
  if wait > 0 or op == 'peek' then return {wait, 0} end
  count(KEYS[1], tonumber(ARGV[5]))
  count(KEYS[2], tonumber(ARGV[7]))
  if account_wide then count(KEYS[3], tonumber(ARGV[9])) end
  return {0, account_wide and 1 or 0}
end

local counted_account = ARGV[4] == '1'
if op == 'release' then
  uncount(KEYS[1])
else
  redis.call('DEL', KEYS[1])
end
uncount(KEYS[2])
if counted_account then uncount(KEYS[3]) end

if op == 'succeed' then
  local remember, most = tonumber(ARGV[5]), tonumber(ARGV[6])
  if remember > 0 then
    redis.call('ZADD', KEYS[4], now + remember, client)
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    local extra = redis.call('ZCARD', KEYS[4]) - most
    if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1) end
    redis.call('PEXPIRE', KEYS[4], remember)
  end
end
return {0, 0}
