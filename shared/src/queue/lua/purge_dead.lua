-- Delete up to ARGV[2] dead letters older than ARGV[1] ms, payload and all. Returns how many.
local cutoff = now_ms() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', K_DEAD, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  forget(id)
  redis.call('ZREM', K_DEAD, id)
end
return #ids
