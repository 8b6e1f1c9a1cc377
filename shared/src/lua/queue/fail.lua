-- Record a failed attempt: retry later (delayed) or bury in the dead letters.
-- ARGV[1] id, ARGV[2] delivery token, ARGV[3] error, ARGV[4] mode ('retry'; 'permanent';
-- 'defer': again after the delay, giving back the attempt this delivery spent),
-- ARGV[5] retry delay (ms), ARGV[6] max attempts, ARGV[7] dead cap.
-- Returns 1 retried, 2 dead, 3 deferred, 0 when that delivery no longer holds the lease.
local id, worker, err = ARGV[1], ARGV[2], ARGV[3]
local mode, delay = ARGV[4], tonumber(ARGV[5]) or 0
local max, cap = tonumber(ARGV[6]) or 1, tonumber(ARGV[7]) or 100000
local key = job_key(id)
local job = redis.call('HMGET', key, F_OWNER, F_ATTEMPTS)
if job[1] ~= worker then
  return 0
end
local now = now_ms()
local attempts = int(job[2], 0)
redis.call('ZREM', K_INFLIGHT, id)
if mode == 'defer' then
  redis.call('HDEL', key, F_OWNER)
  redis.call('HSET', key, F_ERROR, err, F_ATTEMPTS, math.max(attempts - 1, 0), F_HANDED_BACK, 1)
  redis.call('ZADD', K_DELAYED, now + delay, id)
  bump('deferred', 1)
  return 3
end
if mode == 'permanent' or attempts >= max then
  bury(id, err, now, cap)
  return 2
end
redis.call('HDEL', key, F_OWNER)
redis.call('HSET', key, F_ERROR, err)
redis.call('ZADD', K_DELAYED, now + delay, id)
bump('retried', 1)
return 1
