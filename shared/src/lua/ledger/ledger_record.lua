-- Records one outcome for a page of LoginIds of one routine date atomically. Used by
-- shared::ledger (one login per call from a worker; a page of superseded logins at once
-- from `routine run`).
--
-- A `refreshed` entry is final: it is never overwritten. Any other entry (needs_reauth,
-- failed, superseded) is replaced by a later outcome, e.g. after an operator requeue.
-- Per-kind counters in the meta hash (every kind's but `refreshed`'s, which is the rest of
-- the date's entries) and the cross-date `reauth` / `failed` indexes are kept in step in
-- the same call.
--
-- KEYS[1] ledger hash of the date      KEYS[2] meta hash of the date
-- KEYS[3] reauth index (ZSET)          KEYS[4] failed index (ZSET)
-- KEYS[5] outcome outbox (HASH LoginId -> "<score>|<outcome JSON>", see shared::outcomes)
-- ARGV[1] outcome JSON   ARGV[2] kind   ARGV[3] stale (1|0)   ARGV[4] score (epoch ms)
-- ARGV[5] ttl seconds   ARGV[6] index floor: members scored below it are trimmed (expired
-- dates), or '' when the caller had this date's upkeep checked moments ago (see the upkeep
-- below): no check then, one command less per write.
-- ARGV[7] mode: `replace` (the rule above) or `if_absent` (write only when the pair has no
-- entry at all: the dead-letter reconciler never overwrites an outcome a job recorded).
-- ARGV[8] routine date (YYYY-MM-DD)   ARGV[9] the outcome's time, RFC 3339
-- ARGV[10] n, the number of LoginIds   ARGV[11 .. 10+n] the LoginIds
-- Index members are "<routine date>|<LoginId>".
-- Every write that someone must act on also appends its outcome event (see shared::events),
-- in the same atomic step, so there is no outcome without its event and no event without
-- its outcome. A login's open episode (needs_reauth or invalid_login since <start>) is kept
-- so that a login broken for many days gets one event, and its next refresh one
-- `reauth_resolved`:
-- KEYS[6] events stream   KEYS[7] episode HASH (LoginId -> "<type>|<date>|<start ms>")
-- Optionally, with a refreshed outcome of one login, the result is appended to the results
-- stream in the same atomic step (so a redelivered job can never add a second entry):
-- KEYS[8] results stream   ARGV[12+n] stream MAXLEN (approximate)   ARGV[13+n ..] field/value
-- pairs (ARGV[11+n] is 0: see the registry update below); the outcome JSON's placeholder
-- __RESULTS_STREAM_ID__ becomes the entry's id.
-- Every write but a `superseded` one also queues the registry update in the outbox (or,
-- on one Redis, applies it: see below), in the same atomic step: the caller (or a worker's outbox drain, after a crash) applies it to the
-- login's registry keys, which live in other Cluster slots. A pending update of the login
-- with a later score is kept: it is the one the registry must end up with. A superseded
-- outcome says nothing about the login (Flinks was not called), so its registry state and
-- history stay as they are: a login refreshed once a month in rotation keeps its real
-- outcomes in its history, not the days it waited.
-- On one Redis (not a Cluster) the caller may instead have the update of a single login
-- applied here, in the same atomic step, with no outbox entry (registry_apply.lua, which
-- this script is appended to): ARGV[11+n] r, the number of arguments that follow for it
-- (0 or absent: none); ARGV[12+n] the history cap, ARGV[13+n] m, the number of field/value
-- pairs, ARGV[14+n .. 13+n+2m] the pairs, ARGV[14+n+2m .. 11+n+r] the fields to delete;
-- KEYS[8] the login hash and KEYS[9] its history list, and the results stream is then
-- KEYS[10], its MAXLEN and fields following the registry's arguments.
-- Returns {written, JSON, registry}: how many entries were written, the outcome as stored
-- (or the existing JSON kept) for the last LoginId, and 1 when its registry update went
-- into the outbox, 2 when it was applied here (0: nothing written, a superseded outcome, or
-- a later update already pending).
-- Everything read is validated before the first write, so a corrupt entry never aborts the
-- script half-way (an unknown kind is replaced without touching any counter).
local known = { refreshed = true, needs_reauth = true, failed = true, superseded = true }
local kind, score, ttl, floor = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local upkeep_check = ARGV[6] ~= ''
local date, at = ARGV[8], ARGV[9]
local n = tonumber(ARGV[10])
if not known[kind] or not score or not ttl or (upkeep_check and not floor) or not n or n < 1
    or n % 1 ~= 0 then
  return redis.error_reply('ledger_record: invalid arguments')
end
-- The registry update applied here, if any (see above), and where the stream's part starts.
local r = tonumber(ARGV[11 + n] or '0')
local K_LOGIN, K_HISTORY, K_STREAM = false, false, KEYS[8]
if r and r > 0 then
  K_LOGIN, K_HISTORY, K_STREAM = KEYS[8], KEYS[9], KEYS[10]
end
local registry_first, registry_last = 14 + n, 11 + n + (r or 0)
local stream_at = 12 + n + (r or 0)
if not r or r < 0 or r % 1 ~= 0
    or (K_STREAM and (n ~= 1 or #ARGV < stream_at + 2 or (#ARGV - stream_at) % 2 ~= 0))
    or (not K_STREAM and #ARGV > stream_at - 1)
    or (K_LOGIN and (n ~= 1 or not K_HISTORY or #ARGV < registry_last
      or (tonumber(ARGV[12 + n]) or 0) < 1
      or not outcome_args_valid(ARGV[4], ARGV[13 + n], registry_first, registry_last))) then
  return redis.error_reply('ledger_record: invalid arguments')
end

-- Counter changes of the whole page, applied once at the end.
local deltas = {}
local function count(field, n)
  deltas[field] = (deltas[field] or 0) + n
end
-- Adds n to a counter of the meta hash; a corrupt value (not an integer, or one an
-- increment would overflow) is replaced by n. One command when the value is sound.
-- Returns true when the counter is new (its value is now n).
local function bump(field, n)
  local added = redis.pcall('HINCRBY', KEYS[2], field, n)
  if type(added) == 'table' and added.err then
    redis.call('HSET', KEYS[2], field, math.max(n, 0))
    return true
  end
  return added == n
end

-- The outcome event. Never trimmed here: shared::events trims what every consumer acked.
-- event_id: a digest of (type, LoginId, what makes the event unique), stable and opaque.
local function emit(login, event_type, discriminator, extra)
  local event_id = string.sub(redis.sha1hex(event_type .. '|' .. login .. '|' .. discriminator), 1, 32)
  local fields = { 'event_id', event_id, 'type', event_type, 'login_id', login,
    'routine_date', date, 'at', at }
  for i = 1, #extra, 2 do
    local value = extra[i + 1]
    if value ~= nil and value ~= cjson.null and value ~= false and value ~= '' then
      fields[#fields + 1] = extra[i]
      fields[#fields + 1] = tostring(value)
    end
  end
  redis.call('XADD', KEYS[6], '*', unpack(fields))
end
local function failure_type(decoded_outcome)
  if decoded_outcome['reason'] == 'invalid_login' then
    return 'invalid_login'
  end
  return 'failed'
end

-- The events of `login`'s new outcome (`old_kind`/`old`: what it replaced). The outcome's
-- JSON is decoded only where an event needs its fields: most writes are refreshes.
local function events(login, json, old_kind, old)
  if kind == 'superseded' then
    return
  end
  local episode = redis.call('HGET', KEYS[7], login)
  local episode_type, episode_start = false, false
  if episode then
    episode_type, episode_start = string.match(episode, '^([%a_]+)|(.*)$')
  end
  local start = date .. '|' .. ARGV[4]
  if kind == 'needs_reauth' then
    if episode_type ~= 'needs_reauth' then
      local outcome = cjson.decode(json)
      redis.call('HSET', KEYS[7], login, 'needs_reauth|' .. start)
      local unrecognised = 'false'
      if outcome['unrecognised_code'] == true then
        unrecognised = 'true'
      end
      emit(login, 'needs_reauth', start, { 'flinks_code', outcome['flinks_code'],
        'message', outcome['message'], 'unrecognised_code', unrecognised })
    end
  elseif kind == 'refreshed' then
    if episode then
      redis.call('HDEL', KEYS[7], login)
      if episode_type == 'needs_reauth' then
        emit(login, 'reauth_resolved', episode_start or start, { 'source', 'refreshed' })
      end
    end
  elseif kind == 'failed' then
    local outcome = cjson.decode(json)
    local event_type = failure_type(outcome)
    if event_type == 'invalid_login' then
      if episode_type ~= 'invalid_login' then
        redis.call('HSET', KEYS[7], login, 'invalid_login|' .. start)
        emit(login, 'invalid_login', start, { 'flinks_code', outcome['flinks_code'],
          'message', outcome['message'] })
      end
    else
      -- A redelivered or reconciled failure of the same date is the same failure.
      local old_type = false
      if old_kind == 'failed' then
        old_type = failure_type(cjson.decode(old))
      end
      if old_type ~= 'failed' then
        emit(login, 'failed', start, { 'flinks_code', outcome['flinks_code'],
          'message', outcome['message'], 'http_status', outcome['http_status'] })
      end
    end
  end
end

-- The page is taken a window of WINDOW logins at a time: the window's stored entries are
-- read in one HMGET, and its entries and index changes written right after it, a few calls
-- per window instead of two or more per login (at a million superseded logins the per-call
-- cost is most of the time), while those entries are still in the CPU's caches. Within a
-- window, reads go through `entries`, so a login twice in one window sees its first write.
local WINDOW = 64
local UPKEEP_EVERY = 3600
-- A refresh of one login, the worker's write and nearly every write there is, claims its
-- entry with HSETNX instead of reading it first: the entry is absent in the usual case, so
-- one command reads and writes it, and only a login that has an entry already is read (see
-- `record`).
local claim = n == 1 and kind == 'refreshed' and ARGV[7] == 'replace'
local stored = {}       -- the window's LoginIds -> stored JSON or false
local entries = {}      -- LoginId -> the JSON to store
local unindexed = {}    -- index member -> true: leaves both indexes
local indexed = {}      -- index member -> {index key, score}: joins one
local joined = {}       -- index key -> true: the call added to it

local function read_window(first, last)
  stored, entries, unindexed, indexed = {}, {}, {}, {}
  if claim then
    return
  end
  local logins = {}
  for i = first, last do
    if stored[ARGV[i]] == nil then
      stored[ARGV[i]] = false
      logins[#logins + 1] = ARGV[i]
    end
  end
  local values = redis.call('HMGET', KEYS[1], unpack(logins))
  for k, login in ipairs(logins) do
    stored[login] = values[k]
  end
end

local function flush_window()
  local pairs_out = {}
  for login, json in pairs(entries) do
    pairs_out[#pairs_out + 1] = login
    pairs_out[#pairs_out + 1] = json
  end
  if #pairs_out > 0 then
    redis.call('HSET', KEYS[1], unpack(pairs_out))
  end
  local members = {}
  for member in pairs(unindexed) do
    members[#members + 1] = member
  end
  if #members > 0 then
    redis.call('ZREM', KEYS[3], unpack(members))
    redis.call('ZREM', KEYS[4], unpack(members))
  end
  for member, at in pairs(indexed) do
    redis.call('ZADD', at[1], at[2], member)
    joined[at[1]] = true
  end
end

-- Appends the result to the results stream; returns the outcome's JSON naming the entry,
-- and the entry's id.
local function append_result(json)
  local id = redis.call('XADD', K_STREAM, 'MAXLEN', '~', ARGV[stream_at], '*',
    unpack(ARGV, stream_at + 1, #ARGV))
  return (string.gsub(json, '__RESULTS_STREAM_ID__', id)), id
end

-- Records the outcome for `login`; returns 1 and the JSON stored, or 0 and the JSON kept.
local function record(login)
  local json, appended = ARGV[1], false
  local old
  if claim then
    -- The entry names the result's stream entry, so the result goes first; when the
    -- login's refresh was stored already (a redelivery), the entry just appended is
    -- removed in the same step and no reader ever sees it.
    if K_STREAM then
      json, appended = append_result(json)
    end
    local took = redis.pcall('HSETNX', KEYS[1], login, json)
    if type(took) == 'table' and took.err then
      if appended then
        redis.call('XDEL', K_STREAM, appended)
      end
      return took
    end
    if took == 0 then
      old = redis.call('HGET', KEYS[1], login)
    end
  else
    old = entries[login] or stored[login]
  end
  local old_kind = false
  if old then
    if ARGV[7] == 'if_absent' then
      return 0, old
    end
    local ok, decoded = pcall(cjson.decode, old)
    if ok and type(decoded) == 'table' and type(decoded['kind']) == 'string'
        and known[decoded['kind']] then
      old_kind = decoded['kind']
    end
    if old_kind == 'refreshed' then
      if appended then
        redis.call('XDEL', K_STREAM, appended)
      end
      return 0, old
    end
  end
  if K_STREAM and not appended then
    json = append_result(json)
  end
  -- A claimed entry is written already; any other goes out with its window.
  if not claim or old then
    entries[login] = json
  end
  if old_kind then
    count('count:' .. old_kind, -1)
  end
  -- No counter for `refreshed`, the kind of nearly every write: a date's refreshed count is
  -- its entries less the other kinds' counts (shared::ledger's `counts`), one command less.
  if kind ~= 'refreshed' then
    count('count:' .. kind, 1)
  end
  if ARGV[3] == '1' then
    count('count:stale', 1)
  end
  local member = date .. '|' .. login
  if old then
    unindexed[member] = true
    indexed[member] = nil
  end
  if kind == 'needs_reauth' then
    indexed[member] = {KEYS[3], score}
  elseif kind == 'failed' then
    indexed[member] = {KEYS[4], score}
  end
  local registry = 0
  if kind ~= 'superseded' then
    local pending = redis.call('HGET', KEYS[5], login)
    local pending_score = pending and tonumber(string.match(pending, '^(%-?%d+)|'))
    if pending_score and pending_score > score then
      -- The later pending update is the one the registry must end up with.
    elseif K_LOGIN then
      -- An earlier pending update (left by a crash) goes, as a queued write replaces it:
      -- this one is the later. A drain applying it meanwhile compares before it clears.
      if pending then
        redis.call('HDEL', KEYS[5], login)
      end
      local applied, known_new = apply_outcome(K_LOGIN, ARGV[4], ARGV[13 + n], registry_first,
        registry_last)
      if applied == 1 then
        prepend_history(K_HISTORY, json, ARGV[12 + n], known_new)
      end
      registry = 2
    else
      redis.call('HSET', KEYS[5], login, ARGV[4] .. '|' .. json)
      registry = 1
    end
  end
  events(login, json, old_kind, old)
  return 1, json, registry
end

local written, last, last_registry = 0, '', 0
for first = 11, 10 + n, WINDOW do
  local last_arg = math.min(first + WINDOW - 1, 10 + n)
  read_window(first, last_arg)
  for i = first, last_arg do
    local w, json, registry = record(ARGV[i])
    if type(w) == 'table' and w.err then
      return w
    end
    written = written + w
    last = json
    last_registry = registry or 0
  end
  flush_window()
end
if written > 0 then
  local new_counter = false
  for field, delta in pairs(deltas) do
    if delta ~= 0 and bump(field, delta) then
      new_counter = true
    end
  end
  -- Upkeep (expiries, the indexes' expired dates) once an hour per date, not per write:
  -- it was six of the fifteen commands of a worker's outcome write. A key then expires
  -- within an hour of the TTL after its last write, or that hour and the caller's recheck
  -- interval when the caller asked for no check (shared::ledger); a counter this write
  -- created (the date's first entry of a kind: its keys may be new) is checked anyway. An
  -- index key an upkeep did not see yet (the date's first failure, say) gets its expiry
  -- when added to.
  if (upkeep_check or new_counter)
      and redis.call('TTL', KEYS[1]) < ttl - math.min(UPKEEP_EVERY, math.floor(ttl / 2)) then
    if floor then
      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
      redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[6])
    end
    for i = 1, 4 do
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  else
    for key in pairs(joined) do
      redis.call('EXPIRE', key, ttl)
    end
    -- The meta hash may be new too: a date's first write of a kind with a counter.
    if new_counter then
      redis.call('EXPIRE', KEYS[2], ttl)
    end
  end
end
return {written, last, last_registry}
