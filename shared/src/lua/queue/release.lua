-- Give back leased jobs that never started (graceful stop): front of ready, attempt undone
-- (the delivery is not counted, and the job is marked as handed back).
-- ARGV: pairs of id, delivery token. Returns how many were released.
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZREM', K_INFLIGHT, lease_entry(id, ARGV[i + 1])) == 1 then
    redis.call('HSET', job_key(id), F_HANDED_BACK, 1)
    redis.call('LPUSH', K_READY, id)
    n = n + 1
  end
end
return n
