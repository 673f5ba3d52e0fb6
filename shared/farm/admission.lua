-- Backpressure ledger of one shard: how many items (requests) are waiting or running in it.
-- KEYS[1] the item count (ShardNames.items), KEYS[2] the ledger hash: job id -> "<items>:<admitted at ms>".
-- The count is always the sum of the ledger, so a release is idempotent (only a listed job releases)
-- and reconcile can rebuild the count exactly, in one atomic step, from the jobs the ledger names.
--
-- ARGV[1] = 'admit'     ARGV[2] job id, ARGV[3] items, ARGV[4] limit
--           -> how many of the items are admitted (the first ones: as many as fit, up to all),
--              or -1 refused (the shard is full), or -2 job id already admitted
-- ARGV[1] = 'release'   ARGV[2] job id            -> count left, or -1 if the job held nothing
-- ARGV[1] = 'reconcile' ARGV[2] job key prefix (every key of the shard shares its hash tag),
--           ARGV[3] orphan age ms: an entry whose job was never added is dropped after this long,
--           ARGV[4] the job hash field every job has, ARGV[5] the one set when it finished
--           (BullMQ's layout: shared/farm/bullmq-layout.ts)
--           -> the rebuilt count
local countKey, ledgerKey = KEYS[1], KEYS[2]
local op = ARGV[1]

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

if op == 'admit' then
  local jobId, n, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local count = tonumber(redis.call('GET', countKey) or '0')
  local admitted = math.min(n, limit - count)
  if admitted <= 0 then return -1 end
  if redis.call('HSETNX', ledgerKey, jobId, admitted .. ':' .. nowMs()) == 0 then return -2 end
  redis.call('INCRBY', countKey, admitted)
  return admitted
end

if op == 'release' then
  local entry = redis.call('HGET', ledgerKey, ARGV[2])
  if not entry then return -1 end
  redis.call('HDEL', ledgerKey, ARGV[2])
  local n = tonumber(string.match(entry, '^(%d+):')) or 0
  local left = redis.call('DECRBY', countKey, n)
  if left < 0 then
    redis.call('SET', countKey, 0)
    left = 0
  end
  return left
end

if op == 'reconcile' then
  local jobKeyPrefix, orphanMs, createdField, finishedField = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
  local now = nowMs()
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

return redis.error_reply('admission: unknown op ' .. tostring(op))
