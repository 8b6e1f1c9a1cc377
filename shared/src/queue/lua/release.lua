-- Give back leased jobs that never started (graceful stop): front of ready, attempt undone.
-- ARGV[1] worker id, ARGV[2..] ids. Returns how many were released.
local worker = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K_OWNER, id) == worker then
    redis.call('ZREM', K_INFLIGHT, id)
    redis.call('HDEL', K_OWNER, id)
    add_attempts(id, -1)
    redis.call('LPUSH', K_READY, id)
    n = n + 1
  end
end
return n
