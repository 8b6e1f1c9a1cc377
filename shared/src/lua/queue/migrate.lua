-- Move jobs stored in the previous layout (one hash per field: payload, attempts, owner,
-- enqueued, dedupe_of, error, supersede_of, at KEYS[N_KEYS + 1..N_KEYS + 7] in that order)
-- into one hash per job. Idempotent and resumable: each job moves whole in one call, and a
-- job already in its own hash keeps the values it has there.
-- ARGV[1] HSCAN cursor over the old payload hash, ARGV[2] count hint.
-- Returns {next cursor, jobs moved, 1 when no old-layout payload is left (and the old
-- hashes, then holding only metadata of jobs long gone, are deleted) else 0}.
local legacy = {}
for i = 1, 7 do
  legacy[i] = KEYS[N_KEYS + i]
end
local fields = {F_PAYLOAD, F_ATTEMPTS, F_OWNER, F_ENQUEUED, F_DEDUPE, F_ERROR, 's'}
if redis.call('EXISTS', legacy[1]) == 0 then
  redis.call('DEL', unpack(legacy))
  return {'0', 0, 1}
end
local scan = redis.call('HSCAN', legacy[1], ARGV[1], 'COUNT', tonumber(ARGV[2]) or 500)
local pairs_ = scan[2]
local moved = 0
for i = 1, #pairs_, 2 do
  local id = pairs_[i]
  local key = job_key(id)
  local any = false
  for f = 1, 7 do
    local v = redis.call('HGET', legacy[f], id)
    if v then
      redis.call('HSETNX', key, fields[f], v)
      redis.call('HDEL', legacy[f], id)
      any = true
    end
  end
  -- Whether the earlier layout ever gave this job's attempt back is not known.
  if any then
    redis.call('HSET', key, F_HANDED_BACK, 1)
  end
  moved = moved + 1
end
return {scan[1], moved, 0}
