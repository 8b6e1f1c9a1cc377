-- Moves one key bucket from the layout with an `all` SET (every login, active or not)
-- beside the active SET to the layout with an inactive SET instead: every member of `all`
-- is filed by whether the bucket's active SET holds it, as inactive when it does not and
-- out of the inactive SET when it does (a login an earlier version activated after this
-- layout had filed it as inactive), then `all` is deleted. Idempotent: without an `all`
-- SET it does nothing. Atomic per bucket, so a writer of the new layout running meanwhile
-- never sees a login in neither SET or in both.
-- KEYS[1] the bucket's `all` SET, KEYS[2] its active SET, KEYS[3] its inactive SET.
-- Returns how many logins it filed as inactive.
local CHUNK = 1000 -- ids per command: Lua's unpack has a limit of its own

local function each_chunk(command, key, ids)
  for first = 1, #ids, CHUNK do
    redis.call(command, key, unpack(ids, first, math.min(first + CHUNK - 1, #ids)))
  end
end

local inactive = redis.call('SDIFF', KEYS[1], KEYS[2])
each_chunk('SADD', KEYS[3], inactive)
each_chunk('SREM', KEYS[3], redis.call('SINTER', KEYS[1], KEYS[2]))
redis.call('UNLINK', KEYS[1])
return #inactive
