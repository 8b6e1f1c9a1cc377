-- Removes logins' entries from the outcome outbox once their registry updates are applied,
-- each only if it is still the entry that was applied: a later outcome written meanwhile
-- stays for its own apply. Used by shared::outcomes. One key only (valid on Redis Cluster).
--
-- KEYS[1] outbox hash
-- ARGV[2k-1] a LoginId   ARGV[2k] the entry applied for it (k = 1, 2, ...)
-- Returns how many entries were removed.
local removed = 0
for i = 1, #ARGV - 1, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
