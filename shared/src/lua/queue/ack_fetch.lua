-- Acknowledge a finished job and lease the next ones in the same call (BullMQ's
-- moveToFinished): one round trip per job instead of two. Only for a worker that may claim
-- a job right now (the backend asks its fetch gate first: see queue/handoff.rs); with no
-- job to lease (ARGV[4] 0) it is a plain ack, which may still chain a job.
-- ARGV[1] id, ARGV[2] delivery token of the finished job, ARGV[3] retention (ms, 0 = none),
-- ARGV[4] max jobs to lease, ARGV[5] lease (ms), ARGV[6] promote chunk (0: none), ARGV[7] the new
-- delivery token, ARGV[8] Redis' clock (ms) as the worker estimates it ('' = read TIME;
-- see queue/clock.rs), ARGV[9 ..] the lease reads (see `lease_reads`), ending at
-- ARGV[c - 1]. KEYS[N_KEYS + 1] the finished-job record key.
--
-- Chaining, on one Redis only (the other queue's keys are in another Cluster slot): the
-- finished job's follow-up is queued in another queue in the same step, so the job's
-- result and its next step are never apart. ARGV[c] the chained job's id ('' or absent =
-- none), ARGV[c + 1] its payload, ARGV[c + 2] its delay (ms, 0 = ready now), ARGV[c + 3]
-- the dedupe TTL (ms), ARGV[c + 4] its dedupe label ('' = none); KEYS[N_KEYS + 2 ..] that
-- queue's ready, delayed and counters keys, then its dedupe key when there is a label. The
-- chained job is queued even when the finished job's lease was lost: the work that
-- produced it was done, and its dedupe key tells a redelivery so. Queued as enqueue.lua
-- queues a job without a supersede key: a dedupe key already taken means a duplicate,
-- nothing is queued.
--
-- An attached write, on one Redis only, with a script built by AckWriteScript (which
-- defines `ack_write`; elsewhere it is nil): another module's write that belongs to the
-- finished job's work (a fetched result and its ledger entry, say), run first, so the work
-- and the ack are one step. Like the chained job it runs even when the lease was lost. Its
-- arguments follow the chained job's five (all five present, the id '' for none):
-- ARGV[c + 5] its key count k (its keys are the last k of KEYS), ARGV[c + 6] its argument
-- count a, ARGV[c + 7 .. c + 6 + a] its arguments. An error reply from it returns at once,
-- before the ack and the chained job.
-- Returns {acked (1/0), chained, written, leased jobs...}: chained is '' when the chained
-- job was queued (or there was none), else the id of the job it duplicates; written is the
-- attached write's answer, 0 when there is none; the leased jobs follow in the same list
-- (see `lease_ready`). The worker's liveness is kept by its heartbeat (renew.lua), so this
-- does not stamp `workers`.
local reads, c, invalid = lease_reads(9)
if invalid then
  return redis.error_reply(invalid)
end

local written = 0
if ARGV[c + 5] then
  local k, a = tonumber(ARGV[c + 5]), tonumber(ARGV[c + 6])
  -- The keys before the write's: the queue's, the finished-job record's, the chained job's.
  local before = N_KEYS + 1
  if ARGV[c] ~= '' then
    before = before + 3
    if (ARGV[c + 4] or '') ~= '' then
      before = before + 1
    end
  end
  if not ack_write or not k or not a or k % 1 ~= 0 or a % 1 ~= 0 or a < 0
      or k ~= #KEYS - before or c + 6 + a ~= #ARGV then
    return redis.error_reply('ack_fetch: invalid attached write')
  end
  -- Each copied in one step: a table built by appending grows (and is reallocated) about
  -- log2(n) times, which for the forty-odd arguments of a ledger write cost the call about
  -- 2 us of Redis' CPU (unpack takes up to about 8,000 values; a write has tens).
  local keys, args = { unpack(KEYS, #KEYS - k + 1, #KEYS) }, { unpack(ARGV, c + 7, c + 6 + a) }
  written = ack_write(keys, args) or 0
  if type(written) == 'table' and written.err then
    return written
  end
end
local now = int(ARGV[8], nil)
-- The clock as text for a command: the worker's own text when it sent one.
local now_text = now and ARGV[8]
local function clock()
  now = now or now_ms()
  return now
end
local function clock_text()
  now_text = now_text or digits(clock())
  return now_text
end

local chained = ''
if ARGV[c] and ARGV[c] ~= '' then
  local id, payload, label = ARGV[c], ARGV[c + 1], ARGV[c + 4] or ''
  local ready, delayed, counters = KEYS[N_KEYS + 2], KEYS[N_KEYS + 3], KEYS[N_KEYS + 4]
  local existing = false
  if label ~= '' then
    local ttl = math.max(tonumber(ARGV[c + 3]) or 259200000, 1)
    existing = redis.call('SET', KEYS[N_KEYS + 5], id, 'NX', 'GET', 'PX', digits(ttl))
  end
  if existing then
    chained = existing
  else
    local key = job_prefix(ready) .. id
    local enqueued = clock_text()
    if label ~= '' then
      redis.call('HSET', key, F_PAYLOAD, payload, F_ENQUEUED, enqueued, F_DEDUPE, label)
    else
      redis.call('HSET', key, F_PAYLOAD, payload, F_ENQUEUED, enqueued)
    end
    local delay = tonumber(ARGV[c + 2]) or 0
    if delay > 0 then
      redis.call('ZADD', delayed, digits(clock() + delay), id)
    else
      redis.call('RPUSH', ready, id)
    end
    bump('enqueued', 1, counters)
  end
end

local acked = finish(ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, KEYS[N_KEYS + 1]) and 1 or 0
local max = math.max(tonumber(ARGV[4]) or 0, 0)
local reply = {acked, chained, written}
if max > 0 then
  lease_ready(clock(), max, tonumber(ARGV[5]) or 30000, tonumber(ARGV[6]) or 1000, ARGV[7],
    reads, reply)
end
return reply
