-- Applies one outcome to a login's registry hash and, when applied, prepends it to the
-- login's history: what registry_outcome.lua and registry_history.lua do, in one call.
-- The two keys are in different Cluster slots, so this runs on one Redis only (a single
-- server or Sentinel's master); on a Cluster the two scripts run one after the other.
--
-- KEYS[1] login hash   KEYS[2] history list
-- ARGV[1] the outcome's score (epoch ms)   ARGV[2] n, the number of field/value pairs
-- ARGV[3] outcome JSON   ARGV[4] history cap (entries kept)
-- ARGV[5 .. 4+2n] field/value pairs to set   ARGV[5+2n ..] fields to delete
-- Returns 1 when applied, 0 when the hash holds a later outcome.
local cap = tonumber(ARGV[4])
if not cap or cap < 1 then
  return redis.error_reply('registry_outcome_history: invalid cap')
end
local applied, known_new = apply_outcome(KEYS[1], ARGV[1], ARGV[2], 5, #ARGV)
if applied ~= 1 then
  return applied
end
local history = prepend_history(KEYS[2], ARGV[3], ARGV[4], known_new)
if type(history) == 'table' then
  return history
end
return 1
