-- Global rate limit: GCRA with a burst of one (calls evenly spaced), on Redis' clock.
--
-- KEYS[1] = when the last permit was granted, in ms
-- KEYS[2] = cool-down flag (set after TOO_MANY_REQUESTS; its PTTL is the pause left)
-- KEYS[3] = the stored limit, permits per minute (`producer ratelimit set`); 0 = off
-- ARGV[1] = the limit to use while none is stored (the process' RATE_LIMIT_PER_MINUTE)
-- ARGV[2] = "now" in ms, or "" to use Redis TIME (tests inject a clock here)
-- ARGV[3] = "1" to only peek: answer as if asking, but take nothing
-- ARGV[4] = spacing safety margin (permits are 60000 / limit * (1 + margin) ms apart)
-- Returns {granted (1|0), wait_ms}: wait_ms is how long to wait before asking again, or -1
-- with a grant when the limit is off (so a worker may skip its peeks for a moment).
--
-- All three keys share one hash tag (one Redis Cluster slot). The limit is read on every
-- call, so an operator's change reaches every worker at its next request. Nothing
-- is reserved while a caller waits, so a worker that dies mid-wait leaks no budget.
local limit = tonumber(redis.call('GET', KEYS[3]) or ARGV[1]) or tonumber(ARGV[1]) or 0
if limit <= 0 then
  return {1, -1}
end

local now
if ARGV[2] ~= nil and ARGV[2] ~= '' then
  now = tonumber(ARGV[2]) or 0
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local cooling = redis.call('PTTL', KEYS[2])
if cooling > 0 then
  return {0, cooling}
end

-- The next permit is due one interval (at the current limit) after the last one, so a
-- changed limit applies to the very next permit, whichever way it changed. A corrupt value
-- reads as "no permit yet" and is overwritten by this grant.
local interval = math.ceil(60000 / limit * (1 + (tonumber(ARGV[4]) or 0)))
local last = tonumber(redis.call('GET', KEYS[1]) or '')
if last ~= nil and last + interval > now then
  return {0, last + interval - now}
end

if ARGV[3] == '1' then
  return {1, 0}
end
redis.call('SET', KEYS[1], now, 'PX', interval + 60000)
return {1, 0}
