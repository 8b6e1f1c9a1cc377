-- Takes over the routine's daily enqueue claim from a replica that went quiet, but only if
-- the stale value is still there: two replicas racing for it cannot both win. Used by
-- shared::routine. One key (valid on Redis Cluster).
--
-- KEYS[1] claim key   ARGV[1] stale value seen   ARGV[2] new value   ARGV[3] TTL (s)
-- Returns 1 when taken, 0 when someone else changed it first.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
