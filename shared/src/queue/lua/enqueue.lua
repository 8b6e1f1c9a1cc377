-- Enqueue a batch of jobs, each with an optional dedupe key, atomically.
-- ARGV[1] dedupe TTL (ms), ARGV[2] n, then 5 per job: id, payload, delay_ms, dedupe KEYS
-- index (0 = none), dedupe label. Returns per job {1, id} (new) or {0, existing id} (duplicate).
local now = now_ms()
local ttl = math.max(tonumber(ARGV[1]) or 259200000, 1)
local n = tonumber(ARGV[2]) or 0
local out = {}
local added = 0
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, payload = ARGV[b], ARGV[b + 1]
  local delay, dk, label = tonumber(ARGV[b + 2]) or 0, tonumber(ARGV[b + 3]) or 0, ARGV[b + 4]
  local existing = false
  if dk > 0 then
    existing = redis.call('GET', KEYS[dk])
    if not existing then
      redis.call('SET', KEYS[dk], id, 'PX', ttl)
    end
  end
  if existing then
    out[#out + 1] = {0, existing}
  else
    redis.call('HSET', K_PAYLOAD, id, payload)
    redis.call('HSET', K_ENQUEUED, id, now)
    if dk > 0 then
      redis.call('HSET', K_DEDUPE_OF, id, label)
    end
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, now + delay, id)
    else
      redis.call('RPUSH', K_READY, id)
    end
    added = added + 1
    out[#out + 1] = {1, id}
  end
end
if added > 0 then
  bump('enqueued', added)
end
return out
