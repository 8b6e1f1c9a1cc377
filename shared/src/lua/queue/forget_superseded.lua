-- Removes recorded entries from the superseded outbox. ARGV: the entries, as read from its
-- head. In the usual case the head is exactly those entries, and one LTRIM removes them;
-- otherwise (another enqueuer drained or added some in between) each is removed once by
-- value, so concurrent callers never remove an entry twice.
local n = #ARGV
if n == 0 then
  return 0
end
local head = redis.call('LRANGE', K_SUPERSEDED, 0, n - 1)
local same = #head == n
for i = 1, n do
  if not same then
    break
  end
  same = head[i] == ARGV[i]
end
if same then
  redis.call('LTRIM', K_SUPERSEDED, n, -1)
else
  for i = 1, n do
    redis.call('LREM', K_SUPERSEDED, 1, ARGV[i])
  end
end
return n
