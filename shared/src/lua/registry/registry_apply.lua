-- A login's outcome in its registry keys: the functions of registry_outcome.lua,
-- registry_history.lua, registry_outcome_history.lua and ledger_record.lua, each of which
-- is this file followed by its own. Used by shared::registry and shared::ledger (through
-- shared::outcomes).

-- Applies one outcome to the login hash `key`, unless the hash already holds a later one.
-- The hash keeps `last_outcome_ms`, the score (epoch ms) of the outcome it holds: an outcome
-- with a lower score is ignored, and applying the same outcome again writes the same values,
-- so replaying an outbox entry is harmless.
-- `score` is the outcome's score as sent; ARGV[first .. first+2n-1] are the field/value
-- pairs to set and ARGV[first+2n .. last] the fields to delete. Returns 1 when applied, 0
-- when the hash holds a later outcome, or an error reply for invalid arguments (checked
-- by outcome_args_valid before anything is written).
local function outcome_args_valid(score, n, first, last)
  n = tonumber(n)
  return tonumber(score) ~= nil and n ~= nil and n >= 1 and n % 1 == 0
    and last >= first - 1 + 2 * n
end

local function apply_outcome(key, score, n, first, last)
  if not outcome_args_valid(score, n, first, last) then
    return redis.error_reply('registry_outcome: invalid arguments')
  end
  local at = tonumber(score)
  n = tonumber(n)
  local held = tonumber(redis.call('HGET', key, 'last_outcome_ms') or '')
  if held and held > at then
    return 0
  end
  local set = {}
  for i = first, first - 1 + 2 * n do
    set[#set + 1] = ARGV[i]
  end
  redis.call('HSET', key, 'last_outcome_ms', score, unpack(set))
  if last >= first + 2 * n then
    redis.call('HDEL', key, unpack(ARGV, first + 2 * n, last))
  end
  return 1
end

-- Prepends the outcome `json` to the capped history list `key` unless the list already
-- holds it: replaying an outbox entry never adds an outcome twice. Returns 1 when
-- prepended, 0 when it was there already, or an error reply for an invalid cap.
local function prepend_history(key, json, cap)
  cap = tonumber(cap)
  if not cap or cap < 1 then
    return redis.error_reply('registry_history: invalid cap')
  end
  for _, entry in ipairs(redis.call('LRANGE', key, 0, -1)) do
    if entry == json then
      return 0
    end
  end
  redis.call('LPUSH', key, json)
  redis.call('LTRIM', key, 0, cap - 1)
  return 1
end
