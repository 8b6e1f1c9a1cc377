-- Give back leased jobs that never started (graceful stop): front of ready, attempt undone.
-- ARGV: pairs of id, delivery token. Returns how many were released.
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local key = job_key(id)
  local job = redis.call('HMGET', key, F_OWNER, F_ATTEMPTS)
  if job[1] == ARGV[i + 1] then
    redis.call('ZREM', K_INFLIGHT, id)
    redis.call('HDEL', key, F_OWNER)
    redis.call('HSET', key, F_ATTEMPTS, math.max(int(job[2], 0) - 1, 0), F_HANDED_BACK, 1)
    redis.call('LPUSH', K_READY, id)
    n = n + 1
  end
end
return n
