-- Settles a SetScheduledRefresh call that Flinks answered with 200, for the change `stamp`.
-- One key (the login's hash), so valid on Redis Cluster.
--
-- KEYS[1] login hash
-- ARGV[1] stamp of the job   ARGV[2] IsActivated sent (1|0)   ARGV[3] stamp for a reopen
-- Returns:
--   1  the change is still the latest: state set to on / off
--   0  a newer change superseded it and wants the value just sent (its job settles it)
--   2  a newer change wants the other value, and our call may have landed after its own:
--      the login is pending again under ARGV[3] (the caller indexes and enqueues it)
--   -1 the login is gone
local key = KEYS[1]
local desired = redis.call('HGET', key, 'flinks_desired')
if not desired then
  -- Not stored: an active login is desired 1 (see registry_write.lua); with no flag, the
  -- login is gone.
  if redis.call('HGET', key, 'active') ~= '1' then
    return -1
  end
  desired = '1'
end
if redis.call('HGET', key, 'flinks_stamp') == ARGV[1] then
  local state = 'off'
  if ARGV[2] == '1' then
    state = 'on'
  end
  redis.call('HSET', key, 'flinks_scheduled_refresh', state)
  redis.call('HDEL', key, 'flinks_error')
  return 1
end
if desired == ARGV[2] then
  return 0
end
-- The desired value is written too: it may have been implied (not stored), and a pending
-- change is swept by its stored desired value.
redis.call('HSET', key, 'flinks_desired', desired, 'flinks_stamp', ARGV[3],
  'flinks_scheduled_refresh', 'pending')
return 2
