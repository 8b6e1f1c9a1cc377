-- Moves pending entries of the old one-hash layout (KEYS[7] itself) into their shards
-- (`<pending>:<shard>`, see enqueue.lua). ARGV: three per entry, as read from the old hash:
-- supersede key, its shard, its entry. Where the shard already holds an entry of that key,
-- the higher rank stays. An entry leaves the old hash only if it is still the value read:
-- one that an older process rewrote in between is moved by the next pass.
-- Returns how many entries left the old hash.
local moved = 0
for i = 1, #ARGV, 3 do
  local skey, shard, entry = ARGV[i], K_PENDING .. ':' .. ARGV[i + 1], ARGV[i + 2]
  if redis.call('HGET', K_PENDING, skey) == entry then
    local cur = redis.call('HGET', shard, skey)
    if later_entry(cur, entry) ~= cur then
      redis.call('HSET', shard, skey, entry)
    end
    redis.call('HDEL', K_PENDING, skey)
    moved = moved + 1
  end
end
return moved
