-- Move the dead-letter review cursor (`dead_reviewed` in the counters) forward to ARGV[1];
-- it never goes back, so two reviewers racing cannot undo each other's progress.
-- Returns the cursor.
local to = tonumber(ARGV[1])
local cur = counter('dead_reviewed', 0)
if to and to > cur then
  redis.call('HSET', K_COUNTERS, 'dead_reviewed', string.format('%.0f', to))
  return to
end
return cur
