-- Prelude shared by every queue script (prepended once when the scripts are loaded).
-- Every script receives the same N_KEYS queue keys first; keys a script needs beyond these
-- (dedupe keys, finished-job keys) follow from KEYS[N_KEYS + 1]. A job's own hash,
-- `<tag>:job:<id>`, is built here from the ready key's hash tag: fetch and the reaper only
-- learn ids inside the script, as BullMQ's scripts do, and the key shares the queue's slot.
local N_KEYS = 8
local K_READY, K_DELAYED, K_INFLIGHT, K_DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_COUNTERS, K_WORKERS = KEYS[5], KEYS[6]
-- Superseding (see enqueue.lua): supersede key -> "rank|id" of its latest job, kept after
-- that job ends (it is the key's dedupe record); the outbox of superseded jobs
-- ("id|rank that took over|r<own rank>|payload", the rank that took over prefixed with `a`
-- for a job superseded on arrival), drained by the enqueuer.
local K_PENDING, K_SUPERSEDED = KEYS[7], KEYS[8]

-- A queue's ready key -> the prefix of its jobs' hashes: `{ns:queue}:ready` ->
-- `{ns:queue}:job:`.
local function job_prefix(ready)
  return string.sub(ready, 1, #ready - 5) .. 'job:'
end
local JOB_PREFIX = job_prefix(K_READY)

-- The fields of a job's hash (short: there is one hash per queued job). F_ATTEMPTS counts
-- the deliveries a job has spent (a delivery in flight is not yet counted: see
-- `lease_entry`). Jobs stored by an earlier version may also carry 's', their supersede key,
-- which nothing reads any more, and F_OWNER, the lease holder of a job an earlier version
-- leased. F_HANDED_BACK is set, to 1, on a job whose attempt was given back
-- (released, deferred, requeued with its attempts reset): its delivery count no longer
-- tells whether a handler ever held it.
local F_PAYLOAD, F_ATTEMPTS, F_OWNER, F_ENQUEUED = 'p', 'a', 'o', 't'
local F_DEDUPE, F_ERROR, F_HANDED_BACK = 'd', 'e', 'r'

local function job_key(id)
  return JOB_PREFIX .. id
end

-- `entry` split at its first '|': the text before it and the text after it, or nil when
-- there is none. In-flight entries and pending entries are both split so.
local function split_bar(entry)
  local sep = string.find(entry, '|', 1, true)
  if not sep then
    return nil
  end
  return string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
end

-- A lease's entry in the in-flight set: `<id>|<delivery token>`. The delivery that holds
-- the lease is the entry itself, so removing the entry is the holder check (ZREM answers 1
-- only for the holder), and leasing a job writes nothing to its hash: the delivery it
-- spends is counted in F_ATTEMPTS when it ends other than by an ack (a failure, a lease
-- that expired). An entry written by an earlier version is the bare id, with its holder in
-- the hash's F_OWNER and its delivery already counted. Job ids hold no '|'.
local function lease_entry(id, token)
  return id .. '|' .. token
end

-- An in-flight entry split: its job id and its delivery token, nil for an earlier
-- version's entry (see `lease_entry`).
local function lease_of(entry)
  local id, token = split_bar(entry)
  if not id then
    return entry, nil
  end
  return id, token
end

-- Calls `each(id, entry)` for every in-flight entry, in pages of 1,000; stops early when it
-- answers true. The set holds only the jobs leased right now (bounded by the workers'
-- concurrency), so a read of all of it is short.
local function each_lease(each)
  local start = 0
  while true do
    local page = redis.call('ZRANGE', K_INFLIGHT, start, start + 999)
    for _, entry in ipairs(page) do
      if each((lease_of(entry)), entry) then
        return
      end
    end
    if #page < 1000 then
      return
    end
    start = start + 1000
  end
end

-- The in-flight entry of job `id`, nil when it is not in flight.
local function lease_entry_of(id)
  local found = nil
  each_lease(function(held, entry)
    if held == id then
      found = entry
      return true
    end
    return false
  end)
  return found
end

-- Redis' clock, so every process agrees on deadlines.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Delete a job's hash (payload and metadata). Its dedupe key and its supersede key's
-- pending entry stay: they keep a later duplicate out.
local function forget(id)
  redis.call('DEL', job_key(id))
end

-- Keep at most `cap` dead letters: the oldest go first, payload and all.
local function trim_dead(cap)
  cap = tonumber(cap) or 100000
  local excess = redis.call('ZCARD', K_DEAD) - cap
  while excess > 0 do
    local n = math.min(excess, 500)
    local ids = redis.call('ZRANGE', K_DEAD, 0, n - 1)
    for _, id in ipairs(ids) do forget(id) end
    redis.call('ZREMRANGEBYRANK', K_DEAD, 0, n - 1)
    excess = excess - n
  end
end

-- Every value a script reads back from Redis is validated before the script writes
-- anything with it: a missing or corrupt value (not an integer HINCRBY accepts) reads as a
-- default, so one bad value never aborts a script half-way (Redis does not roll a script
-- back: an error after an LPOP or a ZREM would leave jobs in no state at all).
local function int(raw, default)
  if type(raw) == 'string' and #raw <= 15 and string.match(raw, '^%-?%d+$') then
    return tonumber(raw)
  end
  return default
end

-- A pending entry ("rank|id") split: its rank, nil unless an integer (a corrupt entry),
-- and its id, nil when the entry has no separator at all.
local function entry_rank_and_id(entry)
  local rank, id = split_bar(entry)
  if not rank then
    return nil, nil
  end
  return int(rank, nil), id
end

-- The later of two pending entries ("rank|id", or false for none): the one of the higher
-- rank; one whose rank is an integer over one whose rank is not (corrupt); `a` on a tie.
local function later_entry(a, b)
  if not a then
    return b
  end
  if not b then
    return a
  end
  local rank_a = entry_rank_and_id(a)
  local rank_b = entry_rank_and_id(b)
  if rank_b and (not rank_a or rank_b > rank_a) then
    return b
  end
  return a
end

-- A counter field as a number (`default` when missing or corrupt).
local function counter(field, default)
  return int(redis.call('HGET', K_COUNTERS, field), default)
end

-- A number as the text a command takes. Redis 7.0 turns a Lua number given to
-- `redis.call` into text with a floating-point printf (about 0.4 us a call, 0.7 us for a
-- clock reading); the common count is a constant, and other whole numbers that a double
-- holds exactly go through the integer format, about twice as fast. Anything else (a
-- fraction, a number past 2^53, inf, nan) is printed as Redis would have printed it:
-- the integer format would cut or wrap it.
local function digits(n)
  if n == 1 then
    return '1'
  elseif n % 1 == 0 and n > -9007199254740992 and n < 9007199254740992 then
    return string.format('%d', n)
  end
  return string.format('%.17g', n)
end

-- Adds `n` to a counter field of `counters` (this queue's by default); a corrupt value is
-- replaced by `n`. One HINCRBY in the usual case: its error (a corrupt value) is caught
-- rather than aborting the script.
local function bump(field, n, counters)
  counters = counters or K_COUNTERS
  local res = redis.pcall('HINCRBY', counters, field, digits(n))
  if type(res) == 'table' and res.err then
    redis.call('HSET', counters, field, math.max(n, 0))
  end
end

-- A job's count of spent deliveries (0 when missing or corrupt).
local function attempts_of(id)
  return int(redis.call('HGET', job_key(id), F_ATTEMPTS), 0)
end

-- The score of the next dead letter: its time of death (ms), but always above every earlier
-- letter (`dead_clock`) and above the review cursor (`dead_reviewed`, see the ops module),
-- even when Redis' clock went backwards after a failover. Scores are therefore unique and
-- increasing, and a reader paging past the cursor never misses a burial.
local function dead_score(now)
  local at = math.max(now, counter('dead_clock', 0) + 1, counter('dead_reviewed', 0) + 1)
  redis.call('HSET', K_COUNTERS, 'dead_clock', string.format('%.0f', at))
  return at
end

-- Move a job (already out of ready/delayed/in-flight) to the dead letters, with `attempts`
-- its spent deliveries (nil: as stored).
local function bury(id, err, now, cap, attempts)
  local at = dead_score(now)
  local key = job_key(id)
  if attempts then
    redis.call('HSET', key, F_ERROR, err, F_ATTEMPTS, attempts)
  else
    redis.call('HSET', key, F_ERROR, err)
  end
  redis.call('ZADD', K_DEAD, string.format('%.0f', at), id)
  bump('dead', 1)
  trim_dead(cap)
end

-- `redis.call(cmd, key, ...)` over the values of `args` (a list), 500 at a time: a script's
-- batch of writes to one key goes out in a few calls instead of one per job, and never
-- unpacks more than 500 values at once.
local function call_chunked(cmd, key, args)
  local n = #args
  local i = 1
  while i <= n do
    local j = math.min(i + 499, n)
    redis.call(cmd, key, unpack(args, i, j))
    i = j + 1
  end
end

-- Move at most `chunk` due delayed jobs to the back of ready. Bounded, so a million due
-- jobs never unpack into one call (unpack is done 500 at a time).
local function promote(now, chunk)
  chunk = math.max(tonumber(chunk) or 1000, 1)
  local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, chunk)
  call_chunked('ZREM', K_DELAYED, ids)
  call_chunked('RPUSH', K_READY, ids)
  return #ids
end

-- The lease reads in ARGV from `at` (see Queue::with_lease_reads): their count, then five
-- arguments each: command (HGET, SISMEMBER, or GET, which ignores its argument), key
-- prefix, key element, argument prefix, argument element, an element being 1 or 2, which
-- of the payload's leading strings follows the prefix, or 0 for none (the prefix alone).
-- Returns the reads (nil for none) and the ARGV offset after them, or nil, nil and what
-- is wrong with them: checked before the script writes anything.
local function lease_reads(at)
  local n = math.max(tonumber(ARGV[at]) or 0, 0)
  for i = 0, n - 1 do
    local b = at + 1 + i * 5
    local command, key_part, arg_part = ARGV[b], ARGV[b + 2], ARGV[b + 4]
    -- The elements compared as text: Lua compares two strings by reference, where reading
    -- one as a number parses it. A valid ARGV[b + 4] means every argument before it is there.
    if (command ~= 'HGET' and command ~= 'SISMEMBER' and command ~= 'GET')
        or (key_part ~= '0' and key_part ~= '1' and key_part ~= '2')
        or (arg_part ~= '0' and arg_part ~= '1' and arg_part ~= '2') then
      return nil, nil, 'lease reads: invalid read ' .. (i + 1)
    end
  end
  -- Where the reads start and how many: read_into takes them from ARGV as it goes, so a
  -- call builds no table per read (each one Lua's collector would have to free).
  local reads = n > 0 and {at + 1, n} or nil
  return reads, at + 1 + n * 5
end

-- A read's element ('1' or '2': the payload's first or second string; '0': none).
local function payload_element(text, first, second)
  if text == '1' then
    return first
  elseif text == '2' then
    return second
  end
  return ''
end

-- Appends to `out` what `reads` answer for a job of `payload`: 1, the payload's two leading
-- strings as written, and one answer per read (a string or false; SISMEMBER answers '1' or
-- '0'); or 0 alone when the payload does not start as a compact JSON array of two plain
-- strings (no escapes), or a read failed. The caller compares the strings with what it
-- decoded: a decoder may normalise them.
local function read_into(out, payload, reads)
  local at = #out
  local first, second = string.match(payload, '^%["([^"\\]*)","([^"\\]*)"[,%]]')
  if first then
    out[at + 1], out[at + 2], out[at + 3] = 1, first, second
    for i = 1, reads[2] do
      local b = reads[1] + (i - 1) * 5
      local command = ARGV[b]
      local key = ARGV[b + 1] .. payload_element(ARGV[b + 2], first, second)
      -- pcall: a key of the wrong type makes the job's reads answer nothing rather than
      -- abort the script after the job left ready (the handler then reads for itself, and
      -- meets the error there).
      local value
      if command == 'GET' then
        value = redis.pcall('GET', key)
      else
        value = redis.pcall(command, key, ARGV[b + 3] .. payload_element(ARGV[b + 4], first, second))
      end
      if type(value) == 'table' and value.err then
        first = nil
        break
      elseif command == 'SISMEMBER' then
        value = tostring(value)
      end
      out[at + 3 + i] = value
    end
  end
  if not first then
    for i = #out, at + 1, -1 do
      out[i] = nil
    end
    out[at + 1] = 0
  end
end

-- Lease up to `max` ready jobs to delivery `token` until `now + lease`: ready -> in-flight
-- (see `lease_entry`; the job's hash is only read).
-- Promotes due delayed jobs (once per call, at most `chunk`; none when `chunk` is 0: the
-- worker offers the promotion to one call per interval, see queue/promote_gate.rs) when
-- ready runs dry before `max` are taken.
-- Appends to `out` (the script's reply: one flat list, since Redis turns every table of a
-- reply into an array at about 3,000 instructions each) and returns it, per leased job: id,
-- payload, attempt, first, then, when there are `reads` (from lease_reads), what they
-- answered (see read_into). attempt counts deliveries, this one included; first is 1 when no
-- handler ever held the job before (attempt 1, and no attempt given back), else 0. Ids
-- without a payload (tombstones of superseded or deleted jobs) are dropped on the way, at
-- most MAX_SKIP per call so one call stays short; the `ready_tombstones` count follows. A
-- well-stocked ready list costs one LPOP, with no LLEN before it.
local function lease_ready(now, max, lease, chunk, token, reads, out)
  local MAX_SKIP = 1000
  local taken = 0
  local skipped = 0
  local promoted = false
  local deadline = nil
  while taken < max and skipped < MAX_SKIP do
    local want = max - taken
    local ids = redis.call('LPOP', K_READY, digits(want)) or {}
    for _, id in ipairs(ids) do
      local key = job_key(id)
      local job = redis.call('HMGET', key, F_PAYLOAD, F_ATTEMPTS, F_HANDED_BACK)
      if job[1] then
        local attempt = math.max(int(job[2], 0) + 1, 1)
        local first = 0
        if (not job[2] or job[2] == '0') and not job[3] then
          first = 1
        end
        deadline = deadline or digits(now + lease)
        redis.call('ZADD', K_INFLIGHT, deadline, lease_entry(id, token))
        local at = #out
        out[at + 1], out[at + 2], out[at + 3], out[at + 4] = id, job[1], attempt, first
        if reads then
          read_into(out, job[1], reads)
        end
        taken = taken + 1
      else
        skipped = skipped + 1
      end
    end
    if #ids < want then
      -- Ready is empty: the due delayed jobs join it, then the loop takes them.
      if promoted or chunk == 0 or promote(now, chunk) == 0 then
        break
      end
      promoted = true
    end
  end
  if skipped > 0 then
    local left = counter('ready_tombstones', 0)
    redis.call('HSET', K_COUNTERS, 'ready_tombstones', math.max(left - skipped, 0))
  end
  return out
end

-- Settle job `id` as done if delivery `token` still holds it: drop it and its metadata;
-- optionally keep a small record of it for `retention` ms in `done_key`.
-- Returns true, or false when that delivery no longer holds the job (nothing changed).
local function finish(id, token, retention, done_key)
  if redis.call('ZREM', K_INFLIGHT, lease_entry(id, token)) == 0 then
    return false
  end
  local attempts = retention > 0 and attempts_of(id) + 1
  forget(id)
  bump('succeeded', 1)
  if attempts then
    redis.call('HSET', done_key, 'attempts', attempts, 'finished_at', now_ms(), 'worker', token)
    redis.call('PEXPIRE', done_key, retention)
  end
  return true
end
