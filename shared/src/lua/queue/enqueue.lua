-- Enqueue a batch of jobs, each with an optional dedupe key and supersede key, atomically.
-- ARGV[1] dedupe TTL (ms), ARGV[2] n, then 7 per job: id, payload, delay_ms, dedupe KEYS
-- index (0 = none), dedupe label, supersede key ('' = none), supersede rank (integer).
-- Returns per job {1, id} (new) or {0, existing id} (duplicate).
--
-- Superseding keeps at most one waiting job per supersede key (e.g. one authorize per
-- login): a new job whose rank is higher than the key's pending job replaces it when that
-- job still waits (ready or delayed). The replaced job's hash is deleted,
-- it leaves the delayed set, and an id in the ready list becomes a tombstone that fetch
-- skips (removing it from the middle of a long list would cost O(list length) per job);
-- `ready_tombstones` counts them so the ready count stays right. "id|payload" of each
-- replaced job is appended to the superseded outbox for the enqueuer to record. A job in
-- flight or dead is not waiting: it is left alone and the new job becomes the pending one.
-- A new job of a lower or equal rank than a waiting pending job is enqueued as usual and
-- leaves the pending entry alone.
local now = now_ms()
local ttl = math.max(tonumber(ARGV[1]) or 259200000, 1)
local n = tonumber(ARGV[2]) or 0
local out = {}
local added, superseded, tombstones = 0, 0, 0

-- Whether the delayed set may hold anything: a ZREM there is skipped while it is empty.
local any_delayed = redis.call('ZCARD', K_DELAYED) > 0

-- The payload of job `id` while it waits to run (it has a payload and is neither in flight
-- nor dead), else nil. One HMGET in the usual case: a job in flight has an owner, and only
-- a job that failed before (an error recorded: retrying or dead) needs the dead set asked.
local function waiting_payload(id)
  local job = redis.call('HMGET', job_key(id), F_PAYLOAD, F_OWNER, F_ERROR)
  if not job[1] or job[2] then
    return nil
  end
  if job[3] and redis.call('ZSCORE', K_DEAD, id) then
    return nil
  end
  return job[1]
end

-- Makes `id` the pending job of `skey` unless a waiting job of an equal or higher rank is.
local function supersede(skey, rank, id)
  local cur = redis.call('HGET', K_PENDING, skey)
  if cur then
    local sep = string.find(cur, '|', 1, true)
    local old_rank = sep and int(string.sub(cur, 1, sep - 1), nil)
    local old_id = sep and string.sub(cur, sep + 1)
    local payload = old_id and old_id ~= '' and waiting_payload(old_id)
    if payload then
      if old_rank and old_rank >= rank then
        return
      end
      if not (any_delayed and redis.call('ZREM', K_DELAYED, old_id) == 1) then
        tombstones = tombstones + 1
      end
      -- Its pending entry is overwritten below; the dedupe key is left to its TTL.
      redis.call('DEL', job_key(old_id))
      redis.call('RPUSH', K_SUPERSEDED, old_id .. '|' .. payload)
      superseded = superseded + 1
    end
  end
  redis.call('HSET', K_PENDING, skey, string.format('%d', rank) .. '|' .. id)
end

for i = 0, n - 1 do
  local b = 3 + i * 7
  local id, payload = ARGV[b], ARGV[b + 1]
  local delay, dk, label = tonumber(ARGV[b + 2]) or 0, tonumber(ARGV[b + 3]) or 0, ARGV[b + 4]
  local skey, rank = ARGV[b + 5], int(ARGV[b + 6], 0)
  local existing = false
  if dk > 0 then
    -- One command: set when absent, and the id already there when not.
    existing = redis.call('SET', KEYS[dk], id, 'NX', 'GET', 'PX', ttl)
  end
  if existing then
    out[#out + 1] = {0, existing}
  else
    local fields = {F_PAYLOAD, payload, F_ENQUEUED, now}
    if skey ~= '' then
      supersede(skey, rank, id)
      fields[#fields + 1] = F_SUPERSEDE
      fields[#fields + 1] = skey
    end
    if dk > 0 then
      fields[#fields + 1] = F_DEDUPE
      fields[#fields + 1] = label
    end
    redis.call('HSET', job_key(id), unpack(fields))
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, now + delay, id)
      any_delayed = true
    else
      redis.call('RPUSH', K_READY, id)
    end
    added = added + 1
    out[#out + 1] = {1, id}
  end
end
if added > 0 then
  bump('enqueued', added)
end
if superseded > 0 then
  bump('superseded', superseded)
end
if tombstones > 0 then
  bump('ready_tombstones', tombstones)
end
return out
