-- Run one delayed job now: move it from the delayed set to the front of the ready list, so
-- the next fetch takes it. Its attempts and dedupe key are kept.
-- ARGV[1] id. Returns 'delayed' when it moved, otherwise the state it is in ('ready',
-- 'in_flight', 'dead') or 'unknown'; nothing changes then.
local id = ARGV[1]
if redis.call('ZREM', K_DELAYED, id) == 1 then
  redis.call('LPUSH', K_READY, id)
  return 'delayed'
end
if lease_entry_of(id) then
  return 'in_flight'
end
if redis.call('ZSCORE', K_DEAD, id) then
  return 'dead'
end
if redis.call('HEXISTS', job_key(id), F_PAYLOAD) == 1 then
  return 'ready'
end
return 'unknown'
