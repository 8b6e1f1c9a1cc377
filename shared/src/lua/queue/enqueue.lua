-- Enqueue a batch of jobs, each with an optional dedupe key and supersede key, atomically.
-- ARGV[1] dedupe TTL (ms), ARGV[2] n, ARGV[3] the layout of the jobs' arguments:
-- - `8`: 8 per job from ARGV[4]: id, payload, delay_ms, dedupe KEYS index (0 = none), dedupe
--   label, supersede key ('' = none), supersede rank (integer), pending shard of the
--   supersede key (see below);
-- - `4`, a batch whose jobs share one delay and one supersede rank and have no dedupe key
--   (a routine's): ARGV[4] the delay_ms, ARGV[5] the rank, then 4 per job from ARGV[6]: id,
--   payload, supersede key, pending shard. Half the arguments: taking in an argument costs
--   Redis about as much as a command on a small hash does, and a routine queues a million.
-- Returns the duplicates only, flat: {index, existing id, ...} (index 0-based in the
-- batch); every other job was queued under its own id. At a million jobs a reply entry per
-- job is a million small tables built and serialised for nothing.
--
-- Superseding keeps at most one job per supersede key and rank, and at most one waiting job
-- per supersede key (e.g. one authorize per login and routine date, one waiting per login).
-- The pending entry of a key ("rank|id") names its latest job, and stays after that job
-- ends (acked, dead, deleted): it is the key's dedupe record, one per key rather than one
-- expiring key per job.
-- Pending entries live in PENDING_SHARDS small hashes, `<pending>:<shard>`, the shard
-- chosen by the caller from the supersede key (shared::queue::keys::pending_shard). One
-- hash of a million entries is a hash table, about 136 bytes an entry; a shard of a few
-- dozen stays a listpack, about 85. Earlier versions kept every entry in the one hash
-- `<pending>` itself: while it exists (the move at start, `migrate_pending.lua`, empties
-- and deletes it) it is read too, the higher rank of the two wins, and an entry written
-- here leaves it.
-- - The same rank again is a duplicate of the pending entry's job, whatever its state.
-- - A lower rank is superseded on arrival: the key already has a later job, so this one is
--   not queued; it is answered as a duplicate of that job and reported in the outbox, so its
--   own rank (a routine date) records it.
-- - A higher rank becomes the pending job. When the previous pending job still waits (ready
--   or delayed) it is replaced: its hash is deleted, it leaves the delayed set, and an id in
--   the ready list becomes a tombstone that fetch skips (removing it from the middle of a
--   long list would cost O(list length) per job); `ready_tombstones` counts them so the
--   ready count stays right. A job in flight or dead is not waiting: it is left alone.
-- Each superseded job is appended to the superseded outbox for the enqueuer to record, with
-- the rank of the job that took over and its own: "id|<by rank>|r<own rank>|payload" for a
-- replaced job, "id|a<by rank>|r<own rank>|payload" for one superseded on arrival. The
-- payload is that of the job being queued, which has the same supersede key: the replaced
-- job's own would cost a read of its hash, the one cold lookup per job that deleting it
-- does not already pay. The `superseded` counter counts both.
--
-- Jobs are taken a window of WINDOW at a time: the window's pending entries are read first
-- and written back right after the window, while those entries are still in the CPU's
-- caches; the ready list and the outbox (hot list tails) get one RPUSH for the whole
-- batch. Within a window, reads go through `pending`, so a later job sees what an earlier
-- one did. An entry costs an HGET and an HSET of its shard: the shards are what keeps an
-- entry small, and a window's keys almost never share one.
local WINDOW = 64
local PER_JOB = tonumber(ARGV[3])
if PER_JOB ~= 8 and PER_JOB ~= 4 then
  return redis.error_reply('enqueue: unknown argument layout ' .. tostring(ARGV[3]))
end
local COMPACT = PER_JOB == 4
-- Where job 0's arguments start, and the offsets of its supersede key and pending shard.
local FIRST = COMPACT and 6 or 4
local AT_SKEY, AT_SHARD = COMPACT and 2 or 5, COMPACT and 3 or 7
-- A compact batch's shared delay and rank (the rank as written into entries: the argument
-- itself once it reads as an integer).
local SHARED_DELAY = COMPACT and (tonumber(ARGV[4]) or 0) or 0
local SHARED_RANK = COMPACT and int(ARGV[5], 0) or 0
local SHARED_RANK_TEXT = SHARED_RANK == 0 and '0' or ARGV[5]
local now = now_ms()
-- Written into every job's hash: formatted once (a Lua number handed to redis.call is
-- formatted as a float on every call).
local now_text = string.format('%d', now)
local ttl = math.max(tonumber(ARGV[1]) or 259200000, 1)
local n = tonumber(ARGV[2]) or 0
local out = {}           -- index, existing id of each duplicate
local added, superseded, tombstones = 0, 0, 0

-- Whether the delayed set may hold anything: a ZREM there is skipped while it is empty.
-- Asked once the first job is replaced (a chained job replaces none), or set by a delay.
local any_delayed = nil
-- The ids in flight (a set, read whole: it holds only the jobs leased right now) and
-- whether the dead set may hold anything, both asked once the first job is replaced: a job
-- is looked up in the dead set only when it does (a routine's enqueue usually finds nothing
-- dead). This script adds to neither.
local leased, any_dead = nil, nil

local pending = {}      -- the window's supersede keys -> "rank|id" or false
local pending_dirty = {}
local pending_shard = {} -- the window's supersede keys -> their shard's key
-- Whether the old one-hash layout still exists: asked once, by the first window with a
-- supersede key (most calls, such as a chained job's, have none).
local legacy_pending = nil
local legacy_found = {}  -- the window's supersede keys still in the old one-hash layout
local ready = {}        -- ids to append to ready, in order (false: replaced in this batch)
local ready_at = {}     -- id -> its index in `ready`
local outbox = {}       -- the superseded jobs' entries (see the top)

-- Deletes job `id` (hash `key`) if it still waits to run, and says whether it did. A job in
-- flight is in the in-flight set, a dead one in the dead set, and one that ended has no hash
-- left (its pending entry outlives it), so the DEL that removes a waiting job is also the
-- only lookup of its hash.
local function delete_if_waiting(id, key)
  if leased == nil then
    leased = {}
    each_lease(function(held)
      leased[held] = true
      return false
    end)
    any_dead = redis.call('ZCARD', K_DEAD) > 0
  end
  if leased[id] then
    return false
  end
  if any_dead and redis.call('ZSCORE', K_DEAD, id) then
    return false
  end
  return redis.call('DEL', key) == 1
end

-- Makes `id` (of `payload`) the pending job of `skey` at `rank` (see the top). Returns
-- nil, or the id of the key's job that this one duplicates or was superseded by.
local function supersede(skey, rank, rank_text, id, payload)
  local cur = pending[skey]
  if cur then
    local old_rank, old_id = entry_rank_and_id(cur)
    if old_rank and old_rank >= rank and old_id ~= '' then
      if old_rank > rank then
        outbox[#outbox + 1] = id .. '|a' .. string.format('%d', old_rank) .. '|r' .. rank_text
          .. '|' .. payload
        superseded = superseded + 1
      end
      return old_id
    end
    -- A pending entry whose rank is not an integer (corrupt) cannot name the job by its
    -- rank: the job's own payload is read first, for an entry as earlier versions wrote.
    local old_key = old_id and old_id ~= '' and job_key(old_id)
    local own_payload = old_key and not old_rank and redis.call('HGET', old_key, F_PAYLOAD)
    if old_key and delete_if_waiting(old_id, old_key) then
      if ready_at[old_id] then
        ready[ready_at[old_id]] = false
        ready_at[old_id] = nil
      else
        if any_delayed == nil then
          any_delayed = redis.call('ZCARD', K_DELAYED) > 0
        end
        if not (any_delayed and redis.call('ZREM', K_DELAYED, old_id) == 1) then
          tombstones = tombstones + 1
        end
      end
      -- Its pending entry is overwritten below.
      if old_rank then
        outbox[#outbox + 1] = old_id .. '|' .. rank_text .. '|r' .. string.format('%d', old_rank)
          .. '|' .. payload
      elseif own_payload then
        outbox[#outbox + 1] = old_id .. '|' .. rank_text .. '|' .. own_payload
      end
      superseded = superseded + 1
    end
  end
  local entry = rank_text .. '|' .. id
  pending[skey] = entry
  pending_dirty[skey] = entry
  return nil
end

-- Reads the pending entries of jobs first..last (ARGV offsets) into `pending`: one HGET per
-- supersede key (its shard), and one HMGET of the old one-hash layout while it exists.
local function read_pending(first, last)
  pending, pending_dirty, pending_shard, legacy_found = {}, {}, {}, {}
  local skeys = {}
  for i = first, last do
    local b = FIRST + i * PER_JOB
    local skey = ARGV[b + AT_SKEY]
    if skey ~= '' and pending[skey] == nil then
      local shard = K_PENDING .. ':' .. ARGV[b + AT_SHARD]
      pending_shard[skey] = shard
      pending[skey] = redis.call('HGET', shard, skey)
      skeys[#skeys + 1] = skey
    end
  end
  if #skeys > 0 and legacy_pending == nil then
    legacy_pending = redis.call('EXISTS', K_PENDING) == 1
  end
  if legacy_pending and #skeys > 0 then
    local values = redis.call('HMGET', K_PENDING, unpack(skeys))
    for k, skey in ipairs(skeys) do
      if values[k] then
        legacy_found[#legacy_found + 1] = skey
        pending[skey] = later_entry(pending[skey], values[k])
        pending_dirty[skey] = pending[skey]
      end
    end
  end
end

-- Writes back what the window changed, each entry into its shard, and takes the entries it
-- moved out of the old one-hash layout.
local function flush_window()
  for skey, entry in pairs(pending_dirty) do
    redis.call('HSET', pending_shard[skey], skey, entry)
  end
  if #legacy_found > 0 then
    redis.call('HDEL', K_PENDING, unpack(legacy_found))
  end
end

for first = 0, n - 1, WINDOW do
  local last = math.min(first + WINDOW, n) - 1
  read_pending(first, last)
  for i = first, last do
    local b = FIRST + i * PER_JOB
    local id, payload = ARGV[b], ARGV[b + 1]
    local delay, dk, label, skey, rank, rank_text
    if COMPACT then
      delay, dk, label = SHARED_DELAY, 0, ''
      skey, rank, rank_text = ARGV[b + 2], SHARED_RANK, SHARED_RANK_TEXT
    else
      delay, dk, label = tonumber(ARGV[b + 2]) or 0, tonumber(ARGV[b + 3]) or 0, ARGV[b + 4]
      skey, rank = ARGV[b + 5], int(ARGV[b + 6], 0)
      -- The rank as written into entries: the argument itself once it reads as an integer.
      rank_text = rank == 0 and '0' or ARGV[b + 6]
    end
    local existing = false
    if dk > 0 then
      -- One command: set when absent, and the id already there when not.
      existing = redis.call('SET', KEYS[dk], id, 'NX', 'GET', 'PX', ttl)
    end
    if not existing and skey ~= '' then
      existing = supersede(skey, rank, rank_text, id, payload)
      if existing and dk > 0 then
        -- The dedupe key just taken names the job this one duplicates.
        redis.call('SET', KEYS[dk], existing, 'PX', ttl)
      end
    end
    if existing then
      out[#out + 1] = i
      out[#out + 1] = existing
    else
      if dk > 0 then
        redis.call('HSET', job_key(id), F_PAYLOAD, payload, F_ENQUEUED, now_text, F_DEDUPE, label)
      else
        redis.call('HSET', job_key(id), F_PAYLOAD, payload, F_ENQUEUED, now_text)
      end
      if delay > 0 then
        redis.call('ZADD', K_DELAYED, now + delay, id)
        any_delayed = true
      else
        ready[#ready + 1] = id
        ready_at[id] = #ready
      end
      added = added + 1
    end
  end
  flush_window()
end

local ids = {}
for _, id in ipairs(ready) do
  if id then
    ids[#ids + 1] = id
  end
end
call_chunked('RPUSH', K_READY, ids)
call_chunked('RPUSH', K_SUPERSEDED, outbox)
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
