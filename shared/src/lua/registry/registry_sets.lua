-- Files logins of one key bucket under their active flag, atomically: each registered login
-- is in exactly one of the bucket's two SETs, so a login is never in both nor in neither
-- (a pipeline of an SADD and an SREM could stop between the two).
-- KEYS[1] the bucket's active SET, KEYS[2] its inactive SET.
-- ARGV[1] how many of the ids that follow are active (those come first), then the ids.
-- One SET membership per login rather than two (an `all` SET beside the active one): a
-- membership of a SET of thousands costs Redis about 88 bytes, a million of them 88 MB.
local CHUNK = 1000 -- ids per command: Lua's unpack has a limit of its own
local n_active = tonumber(ARGV[1]) or 0

local function file(from, to, add, remove)
  for first = from, to, CHUNK do
    local last = math.min(first + CHUNK - 1, to)
    redis.call('SADD', add, unpack(ARGV, first, last))
    redis.call('SREM', remove, unpack(ARGV, first, last))
  end
end

file(2, 1 + n_active, KEYS[1], KEYS[2])
file(2 + n_active, #ARGV, KEYS[2], KEYS[1])
return #ARGV - 1
