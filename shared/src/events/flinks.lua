-- Appends `activated` / `deactivated` once Flinks confirmed a SetScheduledRefresh change
-- (shared::scheduled_refresh). The confirmation lives in the login's hash, another Cluster
-- slot, so the caller appends after it and the sweeper appends again for a confirmation a
-- crash left without its event: the stamp makes the second append a no-op.
--
-- KEYS[1] events stream   KEYS[2] HASH LoginId -> stamp of the last change with an event
-- ARGV[1] LoginId   ARGV[2] activated|deactivated   ARGV[3] change stamp
-- ARGV[4] routine date (YYYY-MM-DD)   ARGV[5] now, RFC 3339
-- Returns the event_id, or '' when this change (or a later one) already has its event.
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1') or -1
local stamp = tonumber(ARGV[3])
if not stamp then
  return redis.error_reply('events flinks: invalid stamp')
end
if stamp <= last then
  return ''
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local event_id = string.sub(redis.sha1hex(ARGV[2] .. '|' .. ARGV[1] .. '|' .. ARGV[3]), 1, 32)
redis.call('XADD', KEYS[1], '*', 'event_id', event_id, 'type', ARGV[2], 'login_id', ARGV[1],
  'routine_date', ARGV[4], 'at', ARGV[5])
return event_id
