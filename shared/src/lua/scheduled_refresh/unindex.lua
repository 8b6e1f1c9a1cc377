-- Removes a login from the index of unconfirmed changes only if its score is still the one
-- the caller saw: a writer that indexed a newer change meanwhile keeps its entry. One key.
--
-- KEYS[1] index ZSET   ARGV[1] LoginId   ARGV[2] score seen
-- Returns 1 when removed.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
