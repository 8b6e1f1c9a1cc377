-- Acknowledge a finished job and lease the next ones in the same call (BullMQ's
-- moveToFinished): one round trip per job instead of two. Only for a worker that may claim
-- a job right now (the backend asks its fetch gate first: see queue/handoff.rs).
-- ARGV[1] id, ARGV[2] delivery token of the finished job, ARGV[3] retention (ms, 0 = none),
-- ARGV[4] max jobs to lease, ARGV[5] lease (ms), ARGV[6] promote chunk, ARGV[7] the new
-- delivery token. KEYS[N_KEYS + 1] the finished-job record key.
-- Returns {acked (1/0), {id, payload, attempt}...}. The worker's liveness is kept by its
-- heartbeat (renew.lua), so this does not stamp `workers`.
local acked = finish(ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, KEYS[N_KEYS + 1]) and 1 or 0
local max = math.max(tonumber(ARGV[4]) or 0, 0)
local jobs = {}
if max > 0 then
  jobs = lease_ready(now_ms(), max, tonumber(ARGV[5]) or 30000, tonumber(ARGV[6]) or 1000, ARGV[7])
end
return {acked, jobs}
