-- Lease up to `max` ready jobs to a worker: ready -> in-flight (scored by lease deadline).
-- ARGV[1] worker id, ARGV[2] max, ARGV[3] lease (ms), ARGV[4] promote chunk (0: none),
-- ARGV[5] delivery token: named in the in-flight entry as the lease holder, so only this
-- delivery can settle it;
-- ARGV[6] Redis' clock (ms) as the worker estimates it ('' = read TIME; see
-- queue/clock.rs), ARGV[7 ..] the lease reads (see `lease_reads`).
-- Returns the leased jobs, one after another in one flat list (see `lease_ready`).
local reads, _, invalid = lease_reads(7)
if invalid then
  return redis.error_reply(invalid)
end
local now = int(ARGV[6], nil) or now_ms()
local worker, max = ARGV[1], math.max(tonumber(ARGV[2]) or 1, 1)
local lease, chunk = tonumber(ARGV[3]) or 30000, tonumber(ARGV[4]) or 1000
redis.call('ZADD', K_WORKERS, now, worker)
return lease_ready(now, max, lease, chunk, ARGV[5], reads, {})
