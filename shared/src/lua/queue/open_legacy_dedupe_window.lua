-- Notes the first start of a version that dedupes superseding jobs by their pending entry
-- (see shared::queue::migrate). KEYS[1] the queue's counters; ARGV[1] the field of that
-- first start, ARGV[2] the field of the window's end, ARGV[3] the dedupe TTL (ms).
-- Sets ARGV[1] to now (Redis' clock) unless set; when it was not and the queue counted an
-- enqueue before, also ARGV[2] to now + the TTL. Returns 1 when it opened the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HSETNX', KEYS[1], ARGV[1], string.format('%d', now)) == 1
    and redis.call('HEXISTS', KEYS[1], 'enqueued') == 1 then
  redis.call('HSET', KEYS[1], ARGV[2], string.format('%d', now + tonumber(ARGV[3])))
  return 1
end
return 0
