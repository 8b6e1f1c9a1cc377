-- Applies one outcome to a login's registry hash, unless the hash already holds a later one.
-- Used by shared::registry (through shared::outcomes). It touches one key only, so it is
-- valid on Redis Cluster; the history list, in another slot, is written by
-- registry_history.lua after this script applied the outcome.
--
-- The hash keeps `last_outcome_ms`, the score (epoch ms) of the outcome it holds: an outcome
-- with a lower score is ignored, and applying the same outcome again writes the same values,
-- so replaying an outbox entry is harmless.
--
-- KEYS[1] login hash
-- ARGV[1] the outcome's score (epoch ms)   ARGV[2] n, the number of field/value pairs
-- ARGV[3 .. 2+2n] field/value pairs to set   ARGV[3+2n ..] fields to delete
-- Returns 1 when applied, 0 when the hash holds a later outcome.
local score = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if not score or not n or n < 1 or n % 1 ~= 0 or #ARGV < 2 + 2 * n then
  return redis.error_reply('registry_outcome: invalid arguments')
end
local held = tonumber(redis.call('HGET', KEYS[1], 'last_outcome_ms') or '')
if held and held > score then
  return 0
end
local set = {}
for i = 3, 2 + 2 * n do
  set[#set + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 'last_outcome_ms', ARGV[1], unpack(set))
if #ARGV > 2 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 3 + 2 * n))
end
return 1
