-- Global rate limit: GCRA with a burst of one (calls evenly spaced), on Redis' clock.
--
-- KEYS[1] = theoretical arrival time (TAT) of the next permit, in ms
-- KEYS[2] = cool-down flag (set after TOO_MANY_REQUESTS; its PTTL is the pause left)
-- ARGV[1] = emission interval in ms (60000 / per-minute limit, plus a safety margin)
-- ARGV[2] = "now" in ms, or "" to use Redis TIME (tests inject a clock here)
-- ARGV[3] = "1" to only peek: answer as if asking, but take nothing
-- Returns {granted (1|0), wait_ms}: wait_ms is how long to wait before asking again.
--
-- Nothing is reserved while a caller waits, so a worker that dies mid-wait leaks no
-- budget, and a changed limit takes effect at the next grant.
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

-- A corrupt TAT reads as 0 (a permit is due) and is overwritten by this grant.
local interval = tonumber(ARGV[1]) or 0
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat > now then
  return {0, tat - now}
end

if ARGV[3] == '1' then
  return {1, 0}
end
redis.call('SET', KEYS[1], now + interval, 'PX', interval + 60000)
return {1, 0}
