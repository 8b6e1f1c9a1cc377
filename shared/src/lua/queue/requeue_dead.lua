-- Move dead letters back to ready, each at most once even with concurrent callers: a job is
-- only pushed if this call removed it from the dead set. ARGV[1] reset attempts (0/1),
-- ARGV[2..] ids. Returns the ids requeued.
local reset = ARGV[1] == '1'
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', K_DEAD, id) == 1 then
    if redis.call('HEXISTS', job_key(id), F_PAYLOAD) == 1 then
      if reset then
        redis.call('HSET', job_key(id), F_ATTEMPTS, 0, F_HANDED_BACK, 1)
      end
      redis.call('RPUSH', K_READY, id)
      out[#out + 1] = id
    else
      forget(id)
    end
  end
end
if #out > 0 then
  bump('requeued', #out)
end
return out
