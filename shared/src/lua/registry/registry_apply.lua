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
-- When applied, a second value says whether the outcome is new to the login's keys: the
-- hash held an earlier score, or none at all and no `last_outcome_at` either (which every
-- version that wrote an outcome set). A login's history is written only after its hash
-- took the outcome (in the same call on one Redis, in the next on a Cluster), so the
-- history of a login whose hash held an earlier outcome cannot hold this one yet, and
-- prepend_history need not look.
-- The fields to delete are read with the held score, and only those present are deleted:
-- a refresh after a refresh, the usual case, deletes nothing.
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
  local clear_from = first + 2 * n
  local held_fields = redis.call('HMGET', key, 'last_outcome_ms', 'last_outcome_at',
    unpack(ARGV, clear_from, math.max(last, clear_from - 1)))
  local held = tonumber(held_fields[1] or '')
  if held and held > at then
    return 0
  end
  redis.call('HSET', key, 'last_outcome_ms', score, unpack(ARGV, first, clear_from - 1))
  local present = {}
  for i = clear_from, last do
    if held_fields[3 + i - clear_from] then
      present[#present + 1] = ARGV[i]
    end
  end
  if #present > 0 then
    redis.call('HDEL', key, unpack(present))
  end
  local new = (held and held < at) or (not held and not held_fields[2])
  return 1, new and true or false
end

-- Prepends the outcome `json` to the capped history list `key` unless the list already
-- holds it: replaying an outbox entry never adds an outcome twice. `known_new` (see
-- apply_outcome) skips that check. Trims only a list grown past `cap`. Returns 1 when
-- prepended, 0 when it was there already, or an error reply for an invalid cap.
local function prepend_history(key, json, cap, known_new)
  cap = tonumber(cap)
  if not cap or cap < 1 then
    return redis.error_reply('registry_history: invalid cap')
  end
  if not known_new then
    for _, entry in ipairs(redis.call('LRANGE', key, 0, -1)) do
      if entry == json then
        return 0
      end
    end
  end
  if redis.call('LPUSH', key, json) > cap then
    redis.call('LTRIM', key, 0, cap - 1)
  end
  return 1
end
