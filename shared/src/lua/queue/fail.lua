-- Record a failed attempt: retry later (delayed) or bury in the dead letters.
-- ARGV[1] id, ARGV[2] delivery token, ARGV[3] error, ARGV[4] mode ('retry'; 'permanent';
-- 'defer': again after the delay, giving back the attempt this delivery spent),
-- ARGV[5] retry delay (ms), ARGV[6] max attempts, ARGV[7] dead cap.
-- Returns 1 retried, 2 dead, 3 deferred, 0 when that delivery no longer holds the lease.
local id, token, err = ARGV[1], ARGV[2], ARGV[3]
local mode, delay = ARGV[4], tonumber(ARGV[5]) or 0
local max, cap = tonumber(ARGV[6]) or 1, tonumber(ARGV[7]) or 100000
if redis.call('ZREM', K_INFLIGHT, lease_entry(id, token)) == 0 then
  return 0
end
local key = job_key(id)
local now = now_ms()
if mode == 'defer' then
  redis.call('HSET', key, F_ERROR, err, F_HANDED_BACK, 1)
  redis.call('ZADD', K_DELAYED, now + delay, id)
  bump('deferred', 1)
  return 3
end
-- This delivery is spent: the count a lease does not write.
local attempts = attempts_of(id) + 1
if mode == 'permanent' or attempts >= max then
  bury(id, err, now, cap, attempts)
  return 2
end
redis.call('HSET', key, F_ERROR, err, F_ATTEMPTS, attempts)
redis.call('ZADD', K_DELAYED, now + delay, id)
bump('retried', 1)
return 1
