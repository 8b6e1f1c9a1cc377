-- Prepends one outcome to a login's capped history list unless the list already holds it.
-- Used by shared::registry (through shared::outcomes). One key only (valid on Redis
-- Cluster). The check makes replaying an outbox entry harmless: an outcome appears once.
--
-- KEYS[1] history list
-- ARGV[1] outcome JSON   ARGV[2] cap (entries kept)
-- Returns 1 when prepended, 0 when it was there already.
local cap = tonumber(ARGV[2])
if not cap or cap < 1 then
  return redis.error_reply('registry_history: invalid cap')
end
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if entry == ARGV[1] then
    return 0
  end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, cap - 1)
return 1
