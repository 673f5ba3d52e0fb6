-- The queue of one shard (docs/QUEUE.md): a stream of jobs, read by the consumer group `workers`, and a
-- meter of the items (requests) the shard holds and how fast it drains them. Admission is part of the
-- add, so the count is always the sum of `items` over the stream's entries. Every key carries the
-- shard's hash tag (one cluster slot), and so does the shard channel a completion publishes on; only on a
-- single Redis does a completion touch a key of another slot (KEYS[5]).
-- KEYS[1] the stream (P:jobs; fields id, type, items, data, at), KEYS[2] the meter hash (P:meter: count,
-- and the drain meter items, busy, at), KEYS[3] a finished job's record (P:job:<id>), KEYS[4] a NIP-46
-- job's dedupe key (P:dedupe:<id>), KEYS[5] (complete only, optional) the activity stream.
--
-- The drain rate is items released per millisecond the shard held items, both decayed with a time
-- constant of ARGV[2] ms of busy time (an exponentially weighted mean over about the last window of
-- work). Time while the shard holds nothing neither counts nor ages the measure, so an idle shard keeps
-- the rate it last showed; a stalled one (items held, none released) sees its rate fall. The decay
-- composes, so the meter is written only when the count changes.
--
-- ARGV[1] = 'enqueue'   ARGV[2] window ms, ARGV[3] job id, ARGV[4] items n, ARGV[5] limit, ARGV[6] max
--           wait ms (0: the limit only), ARGV[7] floor (items always admitted while the shard holds
--           fewer), ARGV[8] type, ARGV[9] data JSON, ARGV[10] '1': refuse a job id seen before (KEYS[3],
--           KEYS[4]), ARGV[11] '1': all or nothing, ARGV[12] seconds the dedupe key is kept, ARGV[13]
--           the caller's deadline by this server's clock, ms (0: none): past it nothing is added
--           -> {admitted, retry after ms, entry id, now ms}: admitted is how many of the n items (the
--              first ones) fit, and the entry is added with that many; with all or nothing and not all
--              fitting, how many would fit and nothing is added (entry id ''); -1: a duplicate, nothing
--              added, the entry id of the first add (may be gone); -2: past the deadline, nothing added.
-- ARGV[1] = 'complete'  ARGV[2] window ms, ARGV[3] entry id, ARGV[4] items, ARGV[5] the finished record
--           (JSON, its reply in it), ARGV[6] seconds it is kept, ARGV[7] the channel the record is published
--           on as the reply ('': none), ARGV[8] '1': a shard channel of this slot (SPUBLISH), else PUBLISH;
--           with a KEYS[5] (the activity stream, a single Redis only): ARGV[9] and ARGV[10] a field and
--           value appended to it, ARGV[11] its approximate MAXLEN
--           -> {1, or 0 when the entry was already gone (the entry, meter and record untouched); the
--              reply's receivers}. The activity is appended first and the record published last either
--              way: the job ran (maybe twice), and the answer it gives is an answer. The record is one
--              argument used twice: every byte of an argument costs a hash when Lua makes it a string.
-- ARGV[1] = 'reconcile' ARGV[2] window ms -> the count, rebuilt from the stream
-- ARGV[1] = 'rate'      ARGV[2] window ms -> {items per second x 1000 (-1: not measured yet), count}
-- ARGV[1] = 'lookup'    ARGV[3] entry id -> {finished record or false, 1 if the entry is still in the stream}
local streamKey, meterKey = KEYS[1], KEYS[2]
local op, windowMs = ARGV[1], tonumber(ARGV[2])
-- Below this much busy time measured, the rate is not known yet.
local MIN_MEASURED_MS = 100

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The meter brought up to `now` (not written): count, decayed items and busy time, and the rate in items
-- per ms (nil while not measured).
local function meter(now)
  local m = redis.call('HMGET', meterKey, 'count', 'items', 'busy', 'at')
  local held, items, busy, at = tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0, tonumber(m[4]) or now
  if held > 0 and now > at then
    local w = math.exp(-(now - at) / windowMs)
    items = items * w
    busy = busy * w + windowMs * (1 - w)
  end
  local rate = nil
  if busy >= MIN_MEASURED_MS then rate = items / busy end
  return held, items, busy, rate
end

local function writeMeter(now, count, items, busy)
  redis.call('HSET', meterKey, 'count', count, 'items', tostring(items), 'busy', tostring(busy), 'at', now)
end

if op == 'enqueue' then
  local jobId, n, limit, maxWait, floor = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
    tonumber(ARGV[7])
  local dedupe, allOrNothing, deadline = ARGV[10] == '1', ARGV[11] == '1', tonumber(ARGV[13]) or 0
  local now = nowMs()
  -- The caller has given up on this add (it answered its requests "not queued"): it must not happen.
  if deadline > 0 and now > deadline then return {-2, 0, '', now} end
  if dedupe then
    local first = redis.call('GET', KEYS[4])
    if first then return {-1, 0, first, now} end
    if redis.call('EXISTS', KEYS[3]) == 1 then return {-1, 0, '', now} end
  end
  local held, items, busy, rate = meter(now)
  -- What the shard may hold: the limit, and what it can drain within the max wait (FIFO: the last item
  -- admitted waits for everything before it). Not measured yet (a new shard): the floor.
  local room = limit
  if maxWait > 0 then room = math.min(limit, math.max(floor, math.floor((rate or 0) * maxWait))) end
  local admitted = math.min(n, room - held)
  local retry = 0
  if admitted < n then
    retry = 1000
    if rate and rate > 0 then
      if admitted <= 0 then retry = math.ceil((held + 1 - room) / rate) else retry = math.ceil(1 / rate) end
    end
    retry = math.max(1, retry)
  end
  if admitted <= 0 then return {0, retry, '', now} end
  if admitted < n and allOrNothing then return {admitted, retry, '', now} end
  writeMeter(now, held + admitted, items, busy)
  local entryId = redis.call('XADD', streamKey, '*', 'id', jobId, 'type', ARGV[8], 'items', admitted, 'data', ARGV[9],
    'at', now)
  if dedupe then redis.call('SET', KEYS[4], entryId, 'EX', tonumber(ARGV[12])) end
  return {admitted, retry, entryId, now}
end

if op == 'complete' then
  local entryId, n, record, channel = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[7]
  if KEYS[5] then redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', ARGV[9], ARGV[10]) end
  redis.call('XACK', streamKey, 'workers', entryId)
  local completed = redis.call('XDEL', streamKey, entryId)
  if completed == 1 then
    local now = nowMs()
    local held, items, busy = meter(now)
    writeMeter(now, math.max(0, held - n), items + n, busy)
    redis.call('SET', KEYS[3], record, 'EX', tonumber(ARGV[6]))
  end
  local receivers = 0
  if channel ~= '' then
    if ARGV[8] == '1' then
      receivers = redis.call('SPUBLISH', channel, record)
    else
      receivers = redis.call('PUBLISH', channel, record)
    end
  end
  return {completed, receivers}
end

if op == 'reconcile' then
  local total = 0
  for _, entry in ipairs(redis.call('XRANGE', streamKey, '-', '+')) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'items' then
        total = total + (tonumber(fields[i + 1]) or 0)
        break
      end
    end
  end
  local now = nowMs()
  local _, items, busy = meter(now)
  writeMeter(now, total, items, busy)
  return total
end

if op == 'rate' then
  local held, _, _, rate = meter(nowMs())
  if not rate then return {-1, held} end
  return {math.floor(rate * 1000 * 1000), held}
end

if op == 'lookup' then
  local record = redis.call('GET', KEYS[3])
  if record then return {record, 0} end
  return {false, #redis.call('XRANGE', streamKey, ARGV[3], ARGV[3])}
end

return redis.error_reply('shard queue: unknown op ' .. tostring(op))
