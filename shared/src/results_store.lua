-- Appends one refresh result to the results stream and records the (LoginId, date) ledger
-- entry in the same atomic step, so a redelivered detail job can never add a second
-- stream entry: either both writes happened (and the ledger says so) or neither did.
-- Bookkeeping matches ledger_record.lua for the `refreshed` kind.
--
-- KEYS[1] ledger hash of the date   KEYS[2] meta hash of the date
-- KEYS[3] reauth index              KEYS[4] failed index         KEYS[5] results stream
-- ARGV[1] LoginId   ARGV[2] outcome JSON holding the placeholder __RESULTS_STREAM_ID__
-- ARGV[3] stale (1|0)   ARGV[4] index member (date|LoginId)   ARGV[5] ledger TTL seconds
-- ARGV[6] stream MAXLEN (approximate)   ARGV[7..] stream entry field/value pairs
-- Returns {1, outcome JSON} when stored, {0, existing outcome JSON} when already done.
local old = redis.call('HGET', KEYS[1], ARGV[1])
local old_kind = false
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' then
    old_kind = decoded['kind']
  end
  if old_kind == 'refreshed' then
    return {0, old}
  end
end

local fields = {}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
local json = string.gsub(ARGV[2], '__RESULTS_STREAM_ID__', id)

redis.call('HSET', KEYS[1], ARGV[1], json)
if old_kind then
  redis.call('HINCRBY', KEYS[2], 'count:' .. old_kind, -1)
end
redis.call('HINCRBY', KEYS[2], 'count:refreshed', 1)
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[2], 'count:stale', 1)
end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {1, json}
