-- Return jobs whose lease expired to the front of ready (counted as rescued), or bury them when
-- that delivery was their last allowed attempt. ARGV[1] chunk, ARGV[2] max attempts,
-- ARGV[3] dead cap. Returns {rescued, buried}.
local now = now_ms()
local chunk, max, cap = tonumber(ARGV[1]) or 1000, tonumber(ARGV[2]) or 1, tonumber(ARGV[3]) or 100000
local entries = redis.call('ZRANGEBYSCORE', K_INFLIGHT, '-inf', now, 'LIMIT', 0, chunk)
local rescued, buried = 0, 0
for _, entry in ipairs(entries) do
  local id, token = lease_of(entry)
  local key = job_key(id)
  redis.call('ZREM', K_INFLIGHT, entry)
  local job = redis.call('HMGET', key, F_PAYLOAD, F_ATTEMPTS)
  -- The expired delivery is spent; an earlier version's lease counted it when it was made.
  local attempts = int(job[2], 0)
  if token then
    attempts = attempts + 1
  else
    redis.call('HDEL', key, F_OWNER)
  end
  if not job[1] then
    -- No job behind the entry (its hash removed by hand): nothing to run or bury.
    forget(id)
  elseif attempts >= max then
    bury(id, 'lease expired during the last allowed attempt', now, cap, attempts)
    buried = buried + 1
  else
    redis.call('HSET', key, F_ATTEMPTS, attempts)
    redis.call('LPUSH', K_READY, id)
    rescued = rescued + 1
  end
end
if rescued > 0 then
  bump('rescued', rescued)
end
return {rescued, buried}
