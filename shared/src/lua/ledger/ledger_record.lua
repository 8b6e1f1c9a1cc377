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
-- Optionally, with a refreshed outcome, the result is appended to the results stream in the
-- same atomic step (so a redelivered job can never add a second entry):
-- KEYS[6] results stream   ARGV[10] stream MAXLEN (approximate)   ARGV[11..] field/value
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
if KEYS[6] then
  local fields = {}
  for i = 11, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  local id = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', unpack(fields))
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
return {1, json}
