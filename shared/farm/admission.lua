-- Backpressure ledger of one shard: how many items (requests) are waiting or running in it, and how fast
-- the shard drains them.
-- KEYS[1] the item count (ShardNames.items), KEYS[2] the ledger hash: job id -> "<items>:<admitted at ms>",
-- KEYS[3] the drain meter hash: items (released, decayed), busy (ms the shard held items, decayed),
-- at (ms of the last step).
-- The count is always the sum of the ledger, so a release is idempotent (only a listed job releases)
-- and reconcile can rebuild the count exactly, in one atomic step, from the jobs the ledger names.
--
-- The drain rate is items released per millisecond the shard held items, both decayed with a time
-- constant of ARGV[2] ms of busy time (an exponentially weighted mean over about the last window of
-- work). Time while the shard holds nothing neither counts nor ages the measure, so an idle shard keeps
-- the rate it last showed; a stalled one (items held, none released) sees its rate fall.
--
-- ARGV[1] = 'admit'     ARGV[2] window ms, ARGV[3] job id, ARGV[4] items, ARGV[5] limit, ARGV[6] max
--           wait ms (0: the limit only), ARGV[7] items always admitted while the shard holds fewer (the
--           floor: a shard whose rate fell to nothing still takes some work, and measures again)
--           -> {admitted, retry after ms}: admitted is how many of the items (the first ones) fit, 0 when
--              none, -2 job id already admitted; retry after is when one more item should fit (0: now)
-- ARGV[1] = 'release'   ARGV[2] window ms, ARGV[3] job id -> count left, or -1 if the job held nothing
-- ARGV[1] = 'reconcile' ARGV[2] window ms, ARGV[3] job key prefix (every key of the shard shares its
--           hash tag), ARGV[4] orphan age ms: an entry whose job was never added is dropped after this
--           long, ARGV[5] the job hash field every job has, ARGV[6] the one set when it finished
--           (BullMQ's layout: shared/farm/bullmq-layout.ts)
--           -> the rebuilt count
-- ARGV[1] = 'rate'      ARGV[2] window ms -> {items per second x 1000 (-1: not measured yet), count}
local countKey, ledgerKey, drainKey = KEYS[1], KEYS[2], KEYS[3]
local op, windowMs = ARGV[1], tonumber(ARGV[2])
-- Below this much busy time measured, the rate is not known yet.
local MIN_MEASURED_MS = 100

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function count()
  return tonumber(redis.call('GET', countKey) or '0')
end

-- Brings the drain meter up to now (the shard held `held` items since its last step) and adds `released`
-- items; returns the rate in items per ms, or nil while not measured.
local function drain(now, held, released)
  local m = redis.call('HMGET', drainKey, 'items', 'busy', 'at')
  local items, busy, at = tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or now
  if held > 0 and now > at then
    local w = math.exp(-(now - at) / windowMs)
    items = items * w
    busy = busy * w + windowMs * (1 - w)
  end
  items = items + released
  redis.call('HSET', drainKey, 'items', tostring(items), 'busy', tostring(busy), 'at', now)
  if busy < MIN_MEASURED_MS then return nil end
  return items / busy
end

if op == 'admit' then
  local jobId, n, limit, maxWait, floor = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
    tonumber(ARGV[7])
  local now = nowMs()
  local held = count()
  local rate = drain(now, held, 0)
  -- What the shard may hold: the limit, and what it can drain within the max wait (FIFO: the last item
  -- admitted waits for everything before it).
  -- Not measured yet (a new shard): the floor, until the first work shows the rate.
  local room = limit
  if maxWait > 0 then room = math.min(limit, math.max(floor, math.floor((rate or 0) * maxWait))) end
  local admitted = math.min(n, room - held)
  if admitted <= 0 then
    local retry = 1000
    if rate and rate > 0 then retry = math.ceil((held + 1 - room) / rate) end
    return {0, math.max(1, retry)}
  end
  if redis.call('HSETNX', ledgerKey, jobId, admitted .. ':' .. now) == 0 then return {-2, 0} end
  redis.call('INCRBY', countKey, admitted)
  if admitted < n then
    local retry = 1000
    if rate and rate > 0 then retry = math.ceil(1 / rate) end
    return {admitted, math.max(1, retry)}
  end
  return {admitted, 0}
end

if op == 'release' then
  local entry = redis.call('HGET', ledgerKey, ARGV[3])
  if not entry then return -1 end
  local n = tonumber(string.match(entry, '^(%d+):')) or 0
  drain(nowMs(), count(), n)
  redis.call('HDEL', ledgerKey, ARGV[3])
  local left = redis.call('DECRBY', countKey, n)
  if left < 0 then
    redis.call('SET', countKey, 0)
    left = 0
  end
  return left
end

if op == 'reconcile' then
  local jobKeyPrefix, orphanMs, createdField, finishedField = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
  local now = nowMs()
  drain(now, count(), 0)
  local entries = redis.call('HGETALL', ledgerKey)
  local total = 0
  for i = 1, #entries, 2 do
    local jobId = entries[i]
    local n, at = string.match(entries[i + 1], '^(%d+):(%d+)$')
    n, at = tonumber(n), tonumber(at)
    local live = false
    if n then
      local job = redis.call('HMGET', jobKeyPrefix .. jobId, createdField, finishedField)
      if job[1] then
        -- The job exists: it holds its items until it completes or finally fails.
        live = not job[2]
      else
        -- Not added (yet): admitted a moment ago, or its adder died between admit and add.
        live = now - at < orphanMs
      end
    end
    if live then total = total + n else redis.call('HDEL', ledgerKey, jobId) end
  end
  redis.call('SET', countKey, total)
  return total
end

if op == 'rate' then
  local held = count()
  local rate = drain(nowMs(), held, 0)
  if not rate then return {-1, held} end
  return {math.floor(rate * 1000 * 1000), held}
end

return redis.error_reply('admission: unknown op ' .. tostring(op))
