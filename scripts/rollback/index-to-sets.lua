-- Rebuilds one key bucket's active and inactive SETs, the registry layout before the login
-- index, from its index, and deletes the index: for going back to a version that reads
-- the SETs. Run it for every bucket with every process of this version stopped (any of
-- them, even a read-only `producer` command, moves the SETs back into the index when it
-- starts), e.g. for namespace `nightly-refresh` and the default 64 buckets:
--
--   for b in $(seq 0 63); do
--     redis-cli -c --eval scripts/rollback/index-to-sets.lua \
--       "{nightly-refresh:registry:$b}:index:counts" \
--       "{nightly-refresh:registry:$b}:logins:active" \
--       "{nightly-refresh:registry:$b}:logins:inactive" , 256
--   done
--
-- KEYS[1] the bucket's index counts (its shards are `<the same prefix>:index:<s>`),
-- KEYS[2] its active SET, KEYS[3] its inactive SET.
-- ARGV[1] the shards of a bucket: 16384 / KEY_BUCKETS rounded down, at least 16.
-- Returns the number of logins filed in the SETs.
local prefix = string.gsub(KEYS[1], 'counts$', '')
local shards = tonumber(ARGV[1])
if not shards or shards < 1 or prefix == KEYS[1] then
  return redis.error_reply('usage: KEYS <..:index:counts> <active SET> <inactive SET>, ARGV <shards>')
end
local filed = 0
for shard = 0, shards - 1 do
  local key = prefix .. shard
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if fields[i + 1] == '1' then
      redis.call('SADD', KEYS[2], fields[i])
      redis.call('SREM', KEYS[3], fields[i])
    else
      redis.call('SADD', KEYS[3], fields[i])
      redis.call('SREM', KEYS[2], fields[i])
    end
    filed = filed + 1
  end
  redis.call('UNLINK', key)
end
redis.call('UNLINK', KEYS[1])
return filed
