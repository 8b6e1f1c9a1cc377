-- Return jobs whose lease expired to the front of ready (counted as rescued), or bury them when
-- that delivery was their last allowed attempt. ARGV[1] chunk, ARGV[2] max attempts,
-- ARGV[3] dead cap. Returns {rescued, buried}.
local now = now_ms()
local chunk, max, cap = tonumber(ARGV[1]) or 1000, tonumber(ARGV[2]) or 1, tonumber(ARGV[3]) or 100000
local ids = redis.call('ZRANGEBYSCORE', K_INFLIGHT, '-inf', now, 'LIMIT', 0, chunk)
local rescued, buried = 0, 0
for _, id in ipairs(ids) do
  local attempts = attempts_of(id)
  redis.call('ZREM', K_INFLIGHT, id)
  redis.call('HDEL', job_key(id), F_OWNER)
  if attempts >= max then
    bury(id, 'lease expired during the last allowed attempt', now, cap)
    buried = buried + 1
  else
    redis.call('LPUSH', K_READY, id)
    rescued = rescued + 1
  end
end
if rescued > 0 then
  bump('rescued', rescued)
end
return {rescued, buried}
