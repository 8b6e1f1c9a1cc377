-- Heartbeat of one process: extend the leases of the jobs it holds and mark it alive.
-- ARGV[1] worker id, ARGV[2] lease (ms), ARGV[3] forget workers unseen for (ms), ARGV[4..] pairs of id,
-- delivery token. Returns {now, lost}: Redis' clock as read here (ms: the worker's estimate
-- of it counts from this, see queue/clock.rs) and the ids whose delivery no longer holds
-- them (reaped and maybe re-leased elsewhere).
local now = now_ms()
local worker, lease, prune = ARGV[1], tonumber(ARGV[2]) or 30000, tonumber(ARGV[3]) or 86400000
redis.call('ZADD', K_WORKERS, now, worker)
redis.call('ZREMRANGEBYSCORE', K_WORKERS, '-inf', now - prune)
local lost = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local entry = lease_entry(id, ARGV[i + 1])
  if redis.call('ZSCORE', K_INFLIGHT, entry) then
    redis.call('ZADD', K_INFLIGHT, 'XX', now + lease, entry)
  else
    lost[#lost + 1] = id
  end
end
return {now, lost}
