-- Records a permanent SetScheduledRefresh failure for the change `stamp`, unless a newer
-- change superseded it. One key (the login's hash).
--
-- KEYS[1] login hash
-- ARGV[1] stamp of the job   ARGV[2] error message
-- Returns 1 when recorded, 0 when superseded (or the login is gone).
local key = KEYS[1]
if redis.call('HGET', key, 'flinks_stamp') ~= ARGV[1] then
  return 0
end
redis.call('HSET', key, 'flinks_scheduled_refresh', 'failed', 'flinks_error', ARGV[2])
return 1
