-- Delete up to ARGV[2] dead letters older than ARGV[1] ms, payload and all. With ARGV[3] = 1
-- only letters at or below the review cursor (`dead_reviewed`) go: a letter nobody has
-- reviewed yet is never deleted. Returns how many.
local age, limit = tonumber(ARGV[1]) or 0, tonumber(ARGV[2]) or 0
local cutoff = now_ms() - age
if ARGV[3] == '1' then
  cutoff = math.min(cutoff, counter('dead_reviewed', 0))
end
if limit <= 0 or cutoff < 0 then
  return 0
end
local ids = redis.call('ZRANGEBYSCORE', K_DEAD, '-inf', string.format('%.0f', cutoff), 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  forget(id)
  redis.call('ZREM', K_DEAD, id)
end
return #ids
