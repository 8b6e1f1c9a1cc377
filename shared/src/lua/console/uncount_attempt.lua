-- A successful console login (shared::console::auth) takes back the attempt it counted
-- against its client address, so operators logging in do not use up the address's limit.
-- Only an existing counter is decremented: a counter that expired meanwhile is not
-- recreated (it would have no expiry).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
