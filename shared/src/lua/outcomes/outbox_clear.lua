-- Removes one login's entry from the outcome outbox once its registry update is applied,
-- but only if it is still the entry that was applied: a later outcome written meanwhile
-- stays for its own apply. Used by shared::outcomes. One key only (valid on Redis Cluster).
--
-- KEYS[1] outbox hash
-- ARGV[1] LoginId   ARGV[2] the entry that was applied
-- Returns 1 when removed, 0 when the entry changed or was gone.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
