#!lua flags=no-writes
-- Read-only looks at one shard's queue for the operators' board (shard-queue-view.ts). The layout is the
-- shard queue's: a stream with one entry per job waiting or running (fields id, type, items, data, at),
-- read by one consumer group; a string per finished job, JSON with `failedReason` when it failed.
-- Waiting: the entries after the group's last-delivered id. Active: the entries of the group's PEL.
-- The stream holds at most QUEUE_LIMIT entries, so a walk over it is bounded.
--
-- ARGV[1] = 'counts'   KEYS[1] stream, ARGV[2] group -> {waiting, active}
-- ARGV[1] = 'waiting'  KEYS[1] stream, ARGV[2] group, ARGV[3] n -> the first n waiting entries {id, fields}
-- ARGV[1] = 'active'   KEYS[1] stream, ARGV[2] group, ARGV[3] n -> the first n pending entries, each
--                      {entry or false (deleted meanwhile), consumer, idle ms, deliveries}
-- ARGV[1] = 'find'     KEYS[1] stream, ARGV[2] group, ARGV[3] job id -> the entry whose `id` field is the
--                      job id, {entry, consumer or false (waiting), deliveries}, or false
-- ARGV[1] = 'classify' KEYS[1], ARGV[2..] finished records (one shard's: one slot) -> per record 0 gone,
--                      1 completed, 2 failed
local op = ARGV[1]
local WALK_BATCH = 256

-- The group's XINFO fields by name, or nil when the stream has no such group (or does not exist).
local function groupInfo(stream, group)
  if redis.call('EXISTS', stream) == 0 then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == group then return info end
  end
  return nil
end

-- Start of the waiting entries: after the last delivered one ('-': no group yet, every entry waits).
local function waitingFrom(info)
  return info and ('(' .. info['last-delivered-id']) or '-'
end

-- How many entries from `from` to the end, read a batch at a time (the stream holds at most QUEUE_LIMIT).
local function countFrom(stream, from)
  local n = 0
  while true do
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', WALK_BATCH)
    n = n + #batch
    if #batch < WALK_BATCH then return n end
    from = '(' .. batch[#batch][1]
  end
end

local function fieldOf(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

if op == 'counts' then
  local stream = KEYS[1]
  if redis.call('EXISTS', stream) == 0 then return {0, 0} end
  local info = groupInfo(stream, ARGV[2])
  if not info then return {redis.call('XLEN', stream), 0} end
  -- Redis reports the lag only when it can tell it exactly; else the waiting entries are counted.
  local waiting = info['lag']
  if type(waiting) ~= 'number' then waiting = countFrom(stream, waitingFrom(info)) end
  return {waiting, info['pending']}
end

if op == 'waiting' then
  local stream = KEYS[1]
  if redis.call('EXISTS', stream) == 0 then return {} end
  return redis.call('XRANGE', stream, waitingFrom(groupInfo(stream, ARGV[2])), '+', 'COUNT', tonumber(ARGV[3]))
end

if op == 'active' then
  local stream, group = KEYS[1], ARGV[2]
  if not groupInfo(stream, group) then return {} end
  local out = {}
  for _, p in ipairs(redis.call('XPENDING', stream, group, '-', '+', tonumber(ARGV[3]))) do
    local entry = redis.call('XRANGE', stream, p[1], p[1])[1] or false
    out[#out + 1] = {entry, p[2], p[3], p[4]}
  end
  return out
end

if op == 'find' then
  local stream, group, jobId = KEYS[1], ARGV[2], ARGV[3]
  if redis.call('EXISTS', stream) == 0 then return false end
  local info = groupInfo(stream, group)
  local from = '-'
  while true do
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', WALK_BATCH)
    for _, entry in ipairs(batch) do
      if fieldOf(entry[2], 'id') == jobId then
        local pending = info and redis.call('XPENDING', stream, group, entry[1], entry[1], 1)[1]
        if pending then return {entry, pending[2], pending[4]} end
        return {entry, false, 0}
      end
    end
    if #batch < WALK_BATCH then return false end
    from = '(' .. batch[#batch][1]
  end
end

if op == 'classify' then
  -- KEYS[1] and ARGV[2..]: one call's keys must lead its arguments for the client to route it by slot.
  local keys = {KEYS[1]}
  for i = 2, #ARGV do keys[#keys + 1] = ARGV[i] end
  local out = {}
  for i, key in ipairs(keys) do
    local value = redis.pcall('GET', key)
    if type(value) ~= 'string' then
      out[i] = 0
    elseif not string.find(value, '"failedReason":', 1, true) then
      -- JSON escapes quotes inside strings: with no such key anywhere, the job did not fail.
      out[i] = 1
    else
      -- The key may sit in a nested object (a job's data): only the record's own field counts.
      local ok, record = pcall(cjson.decode, value)
      out[i] = (ok and type(record) == 'table' and type(record['failedReason']) == 'string') and 2 or 1
    end
  end
  return out
end

return redis.error_reply('shard-queue-view: unknown op ' .. tostring(op))
