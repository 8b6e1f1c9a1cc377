-- Give back leased jobs that never started (graceful stop): front of ready, attempt undone.
-- ARGV: pairs of id, delivery token. Returns how many were released.
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', K_OWNER, id) == ARGV[i + 1] then
    redis.call('ZREM', K_INFLIGHT, id)
    redis.call('HDEL', K_OWNER, id)
    add_attempts(id, -1)
    redis.call('LPUSH', K_READY, id)
    n = n + 1
  end
end
return n
