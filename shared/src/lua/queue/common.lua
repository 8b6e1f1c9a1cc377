-- Prelude shared by every queue script (prepended once when the scripts are loaded).
-- Every script receives the same N_KEYS queue keys first, so no script touches an undeclared
-- key; keys a script needs beyond these (dedupe keys, finished-job keys) follow from
-- KEYS[N_KEYS + 1].
local N_KEYS = 15
local K_READY, K_DELAYED, K_INFLIGHT, K_DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_PAYLOAD, K_ATTEMPTS, K_OWNER, K_ENQUEUED = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_DEDUPE_OF, K_ERROR, K_COUNTERS, K_WORKERS = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
-- Superseding (see enqueue.lua): supersede key -> "rank|id" of its pending job; id -> its
-- supersede key; the outbox of superseded jobs ("id|payload"), drained by the enqueuer.
local K_PENDING, K_SUPERSEDE_OF, K_SUPERSEDED = KEYS[13], KEYS[14], KEYS[15]

-- Redis' clock, so every process agrees on deadlines.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drop every per-job field (payload and metadata), and the job's pending entry when it is
-- still the pending job of its supersede key. The dedupe key is left to its TTL.
local function forget(id)
  local skey = redis.call('HGET', K_SUPERSEDE_OF, id)
  if skey then
    local cur = redis.call('HGET', K_PENDING, skey)
    if cur and string.sub(cur, -(#id + 1)) == '|' .. id then
      redis.call('HDEL', K_PENDING, skey)
    end
    redis.call('HDEL', K_SUPERSEDE_OF, id)
  end
  redis.call('HDEL', K_PAYLOAD, id)
  redis.call('HDEL', K_ATTEMPTS, id)
  redis.call('HDEL', K_OWNER, id)
  redis.call('HDEL', K_ENQUEUED, id)
  redis.call('HDEL', K_DEDUPE_OF, id)
  redis.call('HDEL', K_ERROR, id)
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

-- A counter field as a number (`default` when missing or corrupt).
local function counter(field, default)
  return int(redis.call('HGET', K_COUNTERS, field), default)
end

-- Adds `n` to a counter field; a corrupt value is replaced by `n`.
local function bump(field, n)
  local raw = redis.call('HGET', K_COUNTERS, field)
  if raw and not int(raw, nil) then
    redis.call('HSET', K_COUNTERS, field, math.max(n, 0))
  else
    redis.call('HINCRBY', K_COUNTERS, field, n)
  end
end

-- A job's delivery count (0 when missing or corrupt).
local function attempts_of(id)
  return int(redis.call('HGET', K_ATTEMPTS, id), 0)
end

-- Adds `n` to a job's delivery count (never below 0; a corrupt count restarts from 0).
-- Returns the new count.
local function add_attempts(id, n)
  local now_count = math.max(attempts_of(id) + n, 0)
  redis.call('HSET', K_ATTEMPTS, id, now_count)
  return now_count
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

-- Move a job (already out of ready/delayed/in-flight) to the dead letters.
local function bury(id, err, now, cap)
  local at = dead_score(now)
  redis.call('HDEL', K_OWNER, id)
  redis.call('HSET', K_ERROR, id, err)
  redis.call('ZADD', K_DEAD, string.format('%.0f', at), id)
  bump('dead', 1)
  trim_dead(cap)
end

-- Move at most `chunk` due delayed jobs to the back of ready. Bounded, so a million due
-- jobs never unpack into one call (unpack is done 500 at a time).
local function promote(now, chunk)
  chunk = math.max(tonumber(chunk) or 1000, 1)
  local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, chunk)
  local n = #ids
  local i = 1
  while i <= n do
    local j = math.min(i + 499, n)
    redis.call('ZREM', K_DELAYED, unpack(ids, i, j))
    redis.call('RPUSH', K_READY, unpack(ids, i, j))
    i = j + 1
  end
  return n
end
