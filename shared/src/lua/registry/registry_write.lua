-- Writes one login of the registry and, in the same atomic step, the Flinks nightly-refresh
-- state it implies. Used by shared::registry for imports, `logins add` and activate /
-- deactivate. It touches one key only (the login's hash), so it is valid on Redis Cluster.
--
-- The hash's Flinks fields:
--   flinks_desired            1 | 0: the IsActivated value Flinks must end up with
--   flinks_stamp              the change that set it (unique per change; jobs carry it)
--   flinks_scheduled_refresh  on | off (confirmed by Flinks), pending, failed
--   flinks_error              why the last change failed permanently
--
-- A change is due when the active flag differs from flinks_desired. A login registered
-- before this state existed and active counts as desired 1 (nightly refresh is on at
-- Flinks by default); one that was inactive has no known state, so any write sends it.
-- A new active login is `on` without a call. Writing a login whose last change failed
-- permanently tries that change again.
--
-- KEYS[1] login hash
-- ARGV[1] active (1|0)   ARGV[2] now (RFC 3339)   ARGV[3] set the tag (1|0)
-- ARGV[4] tag            ARGV[5] stamp of the change, used if one is due
-- ARGV[6] priority ('' keeps the current one; '0' removes the field, so most logins
--         store none)
-- Returns {new (1|0), change due (1|0)}.
local key = KEYS[1]
local active = ARGV[1]
local old_active = redis.call('HGET', key, 'active')
local desired = redis.call('HGET', key, 'flinks_desired')
if ARGV[3] == '1' then
  redis.call('HSET', key, 'active', active, 'updated_at', ARGV[2], 'tag', ARGV[4])
else
  redis.call('HSET', key, 'active', active, 'updated_at', ARGV[2])
end
redis.call('HSETNX', key, 'added_at', ARGV[2])
if ARGV[6] == '0' then
  redis.call('HDEL', key, 'priority')
elseif ARGV[6] and ARGV[6] ~= '' then
  redis.call('HSET', key, 'priority', ARGV[6])
end
local new = 0
if not old_active then
  new = 1
end
if not desired and old_active == '1' then
  desired = '1'
end
if new == 1 and active == '1' then
  redis.call('HSET', key, 'flinks_desired', '1', 'flinks_scheduled_refresh', 'on')
  return {new, 0}
end
local state = redis.call('HGET', key, 'flinks_scheduled_refresh')
if desired == active and state ~= 'failed' then
  if not state then
    redis.call('HSET', key, 'flinks_desired', desired, 'flinks_scheduled_refresh', 'on')
  end
  return {new, 0}
end
redis.call('HSET', key, 'flinks_desired', active, 'flinks_stamp', ARGV[5],
  'flinks_scheduled_refresh', 'pending')
redis.call('HDEL', key, 'flinks_error')
return {new, 1}
