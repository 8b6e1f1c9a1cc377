-- Gives the webhook delivery lease up on shutdown, if this pod still holds it.
-- KEYS[1] lease key   ARGV[1] this pod's token. Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
