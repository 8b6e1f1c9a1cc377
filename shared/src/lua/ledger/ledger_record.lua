-- Records one (LoginId, routine date) outcome atomically. Used by shared::ledger.
--
-- A `refreshed` entry is final: it is never overwritten (returns 0). Any other entry
-- (needs_reauth, failed, superseded) is replaced by a later outcome, e.g. after an operator requeue.
-- Per-kind counters in the meta hash and the cross-date `reauth` / `failed` indexes are
-- kept in step in the same call.
--
-- KEYS[1] ledger hash of the date      KEYS[2] meta hash of the date
-- KEYS[3] reauth index (ZSET)          KEYS[4] failed index (ZSET)
-- KEYS[5] outcome outbox (HASH LoginId -> "<score>|<outcome JSON>", see shared::outcomes)
-- ARGV[1] LoginId   ARGV[2] outcome JSON   ARGV[3] kind   ARGV[4] stale (1|0)
-- ARGV[5] score (epoch ms)   ARGV[6] index member (date|LoginId)   ARGV[7] ttl seconds
-- ARGV[8] index floor: members scored below it are trimmed (expired dates)
-- ARGV[9] mode: `replace` (the rule above) or `if_absent` (write only when the pair has no
-- entry at all: the dead-letter reconciler never overwrites an outcome a job recorded).
-- Every write that someone must act on also appends its outcome event (see shared::events),
-- in the same atomic step, so there is no outcome without its event and no event without
-- its outcome. A login's open episode (needs_reauth or invalid_login since <start>) is kept
-- so that a login broken for many days gets one event, and its next refresh one
-- `reauth_resolved`:
-- KEYS[6] events stream   KEYS[7] episode HASH (LoginId -> "<type>|<date>|<start ms>")
-- ARGV[10] routine date (YYYY-MM-DD)   ARGV[11] the outcome's time, RFC 3339
-- Optionally, with a refreshed outcome, the result is appended to the results stream in the
-- same atomic step (so a redelivered job can never add a second entry):
-- KEYS[8] results stream   ARGV[12] stream MAXLEN (approximate)   ARGV[13..] field/value
-- pairs; the outcome JSON's placeholder __RESULTS_STREAM_ID__ becomes the entry's id.
-- Every write also queues the registry update in the outbox, in the same atomic step: the
-- caller (or a worker's outbox drain, after a crash) applies it to the login's registry keys,
-- which live in other Cluster slots. A pending update of the login with a later score is
-- kept: it is the one the registry must end up with.
-- Returns {1, outcome JSON as stored} when written, {0, existing JSON} when kept.
-- Everything read is validated before the first write, so a corrupt entry never aborts the
-- script half-way (an unknown kind is replaced without touching any counter).
local known = { refreshed = true, needs_reauth = true, failed = true, superseded = true }
-- Adds n to a counter of the meta hash; a corrupt value (not an integer) is replaced by n.
local function bump(field, n)
  local raw = redis.call('HGET', KEYS[2], field)
  if raw and not (#raw <= 15 and string.match(raw, '^%-?%d+$')) then
    redis.call('HSET', KEYS[2], field, math.max(n, 0))
  else
    redis.call('HINCRBY', KEYS[2], field, n)
  end
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
local old_kind = false
if old then
  if ARGV[9] == 'if_absent' then
    return {0, old}
  end
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' and type(decoded['kind']) == 'string'
      and known[decoded['kind']] then
    old_kind = decoded['kind']
  end
  if old_kind == 'refreshed' then
    return {0, old}
  end
end
if not known[ARGV[3]] or not tonumber(ARGV[5]) or not tonumber(ARGV[7])
    or not tonumber(ARGV[8]) then
  return redis.error_reply('ledger_record: invalid arguments')
end
local pending = redis.call('HGET', KEYS[5], ARGV[1])
local pending_score = pending and tonumber(string.match(pending, '^(%-?%d+)|'))
local json = ARGV[2]
if KEYS[8] then
  local fields = {}
  for i = 13, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  local id = redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[12], '*', unpack(fields))
  json = string.gsub(json, '__RESULTS_STREAM_ID__', id)
end
redis.call('HSET', KEYS[1], ARGV[1], json)
if old_kind then
  bump('count:' .. old_kind, -1)
end
bump('count:' .. ARGV[3], 1)
if ARGV[4] == '1' then
  bump('count:stale', 1)
end
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[6])
if ARGV[3] == 'needs_reauth' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
elseif ARGV[3] == 'failed' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[8])
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[7])
end
if not (pending_score and pending_score > tonumber(ARGV[5])) then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[5] .. '|' .. json)
end

-- The outcome event. Never trimmed here: shared::events trims what every consumer acked.
-- event_id: a digest of (type, LoginId, what makes the event unique), stable and opaque.
local function emit(event_type, discriminator, extra)
  local event_id = string.sub(redis.sha1hex(event_type .. '|' .. ARGV[1] .. '|' .. discriminator), 1, 32)
  local fields = { 'event_id', event_id, 'type', event_type, 'login_id', ARGV[1],
    'routine_date', ARGV[10], 'at', ARGV[11] }
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
local outcome = cjson.decode(json)
local episode = redis.call('HGET', KEYS[7], ARGV[1])
local episode_type, episode_start = false, false
if episode then
  episode_type, episode_start = string.match(episode, '^([%a_]+)|(.*)$')
end
local start = ARGV[10] .. '|' .. ARGV[5]
if ARGV[3] == 'needs_reauth' then
  if episode_type ~= 'needs_reauth' then
    redis.call('HSET', KEYS[7], ARGV[1], 'needs_reauth|' .. start)
    local unrecognised = 'false'
    if outcome['unrecognised_code'] == true then
      unrecognised = 'true'
    end
    emit('needs_reauth', start, { 'flinks_code', outcome['flinks_code'],
      'message', outcome['message'], 'unrecognised_code', unrecognised })
  end
elseif ARGV[3] == 'refreshed' then
  if episode then
    redis.call('HDEL', KEYS[7], ARGV[1])
    if episode_type == 'needs_reauth' then
      emit('reauth_resolved', episode_start or start, { 'source', 'refreshed' })
    end
  end
elseif ARGV[3] == 'failed' then
  local event_type = failure_type(outcome)
  if event_type == 'invalid_login' then
    if episode_type ~= 'invalid_login' then
      redis.call('HSET', KEYS[7], ARGV[1], 'invalid_login|' .. start)
      emit('invalid_login', start, { 'flinks_code', outcome['flinks_code'],
        'message', outcome['message'] })
    end
  else
    -- A redelivered or reconciled failure of the same date is the same failure.
    local old_type = false
    if old_kind == 'failed' then
      old_type = failure_type(cjson.decode(old))
    end
    if old_type ~= 'failed' then
      emit('failed', start, { 'flinks_code', outcome['flinks_code'],
        'message', outcome['message'], 'http_status', outcome['http_status'] })
    end
  end
end
return {1, json}
