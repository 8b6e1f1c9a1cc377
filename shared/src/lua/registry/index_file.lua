-- Files logins of one key bucket in the login index under their active flag, and keeps the
-- bucket's counts right, atomically: every registered login is one field of one shard of
-- its bucket (a small HASH), `1` when active and `0` when not, and the counts HASH holds
-- how many of each the bucket has.
-- KEYS[1] the bucket's counts HASH, KEYS[2..] the shards the logins fall in.
-- ARGV: three per login: its shard's index in KEYS, its flag (1|0), its LoginId.
-- A new login costs one HSETNX; a known one an HGET more, and an HSET when its flag
-- changes. The index itself says what was there, so filing the same logins again (an
-- import run twice, a move resumed) never counts them twice.
-- Returns how many logins were new to the index.
local delta = { ['1'] = 0, ['0'] = 0 }
local new = 0
-- Checked before any write: a script that stops half-way keeps what it wrote, and the
-- counts are bumped at the end.
for i = 1, #ARGV, 3 do
  if delta[ARGV[i + 1]] == nil or KEYS[tonumber(ARGV[i]) or 0] == nil then
    return redis.error_reply('index_file: bad shard or flag at argument ' .. i)
  end
end
for i = 1, #ARGV, 3 do
  local shard, flag, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSETNX', shard, id, flag) == 1 then
    delta[flag] = delta[flag] + 1
    new = new + 1
  else
    local old = redis.call('HGET', shard, id)
    if old ~= flag then
      redis.call('HSET', shard, id, flag)
      delta[flag] = delta[flag] + 1
      -- A corrupt value was never counted.
      if delta[old] then
        delta[old] = delta[old] - 1
      end
    end
  end
end
if delta['1'] ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'active', delta['1'])
end
if delta['0'] ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'inactive', delta['0'])
end
return new
