-- Delete the given dead letters, payload and all, each at most once even with concurrent
-- callers (only a letter this call removed from the dead set is forgotten).
-- ARGV[1..] ids. Returns the ids deleted.
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', K_DEAD, id) == 1 then
    forget(id)
    out[#out + 1] = id
  end
end
return out
