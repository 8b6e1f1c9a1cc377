-- Delete one job that no worker holds, payload and all. A ready job's id stays in the ready
-- list as a tombstone that fetch skips (as for a superseded job), so the delete costs
-- O(1) however long the list. The dedupe key is left to its TTL.
-- ARGV[1] id. Returns the state the job was in ('ready', 'delayed', 'dead'), or
-- 'in_flight' (refused: nothing changed) or 'unknown'.
local id = ARGV[1]
if lease_entry_of(id) then
  return 'in_flight'
end
local state
if redis.call('ZREM', K_DELAYED, id) == 1 then
  state = 'delayed'
elseif redis.call('ZREM', K_DEAD, id) == 1 then
  state = 'dead'
elseif redis.call('HEXISTS', job_key(id), F_PAYLOAD) == 1 then
  state = 'ready'
  bump('ready_tombstones', 1)
else
  return 'unknown'
end
forget(id)
bump('deleted', 1)
return state
