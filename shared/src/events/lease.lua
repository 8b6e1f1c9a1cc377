-- Takes or renews the webhook delivery lease: one pod at a time sends batches, so no batch
-- is ever sent by two pods at once.
-- KEYS[1] lease key   ARGV[1] this pod's token   ARGV[2] lease time, ms
-- Returns 1 when this pod holds the lease for ARGV[2] ms from now, 0 when another does.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
