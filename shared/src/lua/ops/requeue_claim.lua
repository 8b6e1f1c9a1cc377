-- Step 1 of an operator requeue (shared::ops::requeue): atomically claims the selected
-- members of a ledger index (`reauth` or `failed`, member `date|LoginId`) by moving them
-- to the `requeue pending` ZSET as `claim|date|LoginId`. A member is claimed only if it is
-- still in the index, so two operators never both claim it. A member whose ledger entry for
-- that date is `refreshed` is final: it is dropped from the index and not claimed.
-- A claimed member's ledger entry is cleared (and its kind's counter decremented): the
-- (LoginId, date) is pending again until the requeued job records a new outcome, so the
-- dead-letter reconciler, which only fills a missing outcome, records one if that job dies.
-- Every key is of one ledger bucket and shares its hash tag (one Cluster slot).
--
-- KEYS[1] the index ZSET   KEYS[2] the pending ZSET
-- KEYS[1 + 2i] the ledger hash and KEYS[2 + 2i] the meta hash of member i's date
-- ARGV[1] now (epoch ms)   ARGV[2] claim id   ARGV[2 + i] member i (`date|LoginId`)
-- Returns { claimed members, members skipped as already refreshed }.
-- Every value read is validated before anything is written for that member.
local known = { needs_reauth = true, failed = true }
local claimed, refreshed = {}, {}
for i = 1, #ARGV - 2 do
  local member = ARGV[2 + i]
  local ledger, meta = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  if redis.call('ZSCORE', KEYS[1], member) then
    local login = string.match(member, '|(.+)$')
    local kind = false
    if login then
      local raw = redis.call('HGET', ledger, login)
      if raw then
        local ok, decoded = pcall(cjson.decode, raw)
        if ok and type(decoded) == 'table' and type(decoded['kind']) == 'string' then
          kind = decoded['kind']
        end
      end
    end
    redis.call('ZREM', KEYS[1], member)
    if kind == 'refreshed' then
      table.insert(refreshed, member)
    else
      if login and known[kind] then
        redis.call('HDEL', ledger, login)
        local field = 'count:' .. kind
        local count = redis.call('HGET', meta, field)
        if count and #count <= 15 and string.match(count, '^%-?%d+$') then
          redis.call('HINCRBY', meta, field, -1)
        else
          redis.call('HSET', meta, field, 0)
        end
      end
      redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2] .. '|' .. member)
      table.insert(claimed, member)
    end
  end
end
return { claimed, refreshed }
