-- Step 1 of an operator requeue (shared::ops::requeue): atomically claims the selected
-- members of a ledger index (`reauth` or `failed`, member `date|LoginId`) by moving them
-- to the `requeue pending` ZSET as `claim|date|LoginId`. A member is claimed only if it is
-- still in the index, so two operators never both claim it. Unless `force`, a member whose
-- ledger entry for that date is `refreshed` is dropped from the index and not claimed.
-- Every key shares the `{ns:ledger}` hash tag (one Cluster slot).
--
-- KEYS[1] the index ZSET   KEYS[2] the pending ZSET
-- KEYS[2 + i] the ledger hash of member i's date
-- ARGV[1] now (epoch ms)   ARGV[2] claim id   ARGV[3] force (1|0)
-- ARGV[3 + i] member i (`date|LoginId`)
-- Returns { claimed members, members skipped as already refreshed }.
local claimed, refreshed = {}, {}
for i = 4, #ARGV do
  local member = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], member) then
    local login = string.match(member, '|(.+)$')
    local done = false
    if ARGV[3] ~= '1' and login then
      local raw = redis.call('HGET', KEYS[i - 1], login)
      if raw then
        local ok, decoded = pcall(cjson.decode, raw)
        done = ok and type(decoded) == 'table' and decoded['kind'] == 'refreshed'
      end
    end
    redis.call('ZREM', KEYS[1], member)
    if done then
      table.insert(refreshed, member)
    else
      redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2] .. '|' .. member)
      table.insert(claimed, member)
    end
  end
end
return { claimed, refreshed }
