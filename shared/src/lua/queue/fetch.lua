-- Lease up to `max` ready jobs to a worker: ready -> in-flight (scored by lease deadline).
-- ARGV[1] worker id, ARGV[2] max, ARGV[3] lease (ms), ARGV[4] promote chunk,
-- ARGV[5] delivery token: stored as the lease holder, so only this delivery can settle it.
-- Returns {id, payload, attempt} per leased job; attempt counts deliveries, this one included.
-- Ids without a payload (tombstones of superseded jobs) are dropped on the way, at most
-- MAX_SKIP per call so one call stays short; the `ready_tombstones` count follows.
local MAX_SKIP = 1000
local now = now_ms()
local worker, max = ARGV[1], math.max(tonumber(ARGV[2]) or 1, 1)
local lease, chunk = tonumber(ARGV[3]) or 30000, tonumber(ARGV[4]) or 1000
local token = ARGV[5]
redis.call('ZADD', K_WORKERS, now, worker)
if redis.call('LLEN', K_READY) < max then
  promote(now, chunk)
end
local out = {}
local skipped = 0
while #out < max and skipped < MAX_SKIP do
  local ids = redis.call('LPOP', K_READY, max - #out)
  if not ids then
    break
  end
  for _, id in ipairs(ids) do
    local payload = redis.call('HGET', K_PAYLOAD, id)
    if payload then
      redis.call('ZADD', K_INFLIGHT, now + lease, id)
      redis.call('HSET', K_OWNER, id, token)
      local attempt = add_attempts(id, 1)
      out[#out + 1] = {id, payload, attempt}
    else
      skipped = skipped + 1
    end
  end
end
if skipped > 0 then
  local left = counter('ready_tombstones', 0)
  redis.call('HSET', K_COUNTERS, 'ready_tombstones', math.max(left - skipped, 0))
end
return out
