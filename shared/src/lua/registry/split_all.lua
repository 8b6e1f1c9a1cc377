-- Moves one key bucket from the layout with an `all` SET (every login, active or not)
-- beside the active SET to the layout with an inactive SET instead: every member of `all`
-- that is not active is filed as inactive, then `all` is deleted. Idempotent: without an
-- `all` SET it does nothing. Atomic per bucket, so a writer of the new layout running
-- meanwhile never sees a login in neither SET.
-- KEYS[1] the bucket's `all` SET, KEYS[2] its active SET, KEYS[3] its inactive SET.
-- Returns how many logins it filed as inactive.
local CHUNK = 1000 -- ids per command: Lua's unpack has a limit of its own
local ids = redis.call('SDIFF', KEYS[1], KEYS[2])
for first = 1, #ids, CHUNK do
  redis.call('SADD', KEYS[3], unpack(ids, first, math.min(first + CHUNK - 1, #ids)))
end
redis.call('UNLINK', KEYS[1])
return #ids
