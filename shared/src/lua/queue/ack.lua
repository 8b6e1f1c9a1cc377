-- Acknowledge a finished job: drop it and its payload; optionally keep a small record of it
-- for a while in KEYS[N_KEYS + 1]. ARGV[1] id, ARGV[2] delivery token, ARGV[3] retention (ms, 0 = none).
-- Returns 1, or 0 when that delivery no longer holds the job's lease (nothing is changed).
local id, worker, retention = ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0
if redis.call('HGET', K_OWNER, id) ~= worker then
  return 0
end
local now = now_ms()
local attempts = redis.call('HGET', K_ATTEMPTS, id) or '0'
redis.call('ZREM', K_INFLIGHT, id)
forget(id)
bump('succeeded', 1)
if retention > 0 then
  redis.call('HSET', KEYS[N_KEYS + 1], 'attempts', attempts, 'finished_at', now, 'worker', worker)
  redis.call('PEXPIRE', KEYS[N_KEYS + 1], retention)
end
return 1
