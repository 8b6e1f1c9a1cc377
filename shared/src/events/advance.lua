-- Moves the webhook cursor past a batch: after a 2xx (delivered), or after its events grew
-- older than WEBHOOK_MAX_AGE (parked: ARGV[3] is the batch, pushed to the dead-letter list
-- in the same step, so a batch is never both skipped and lost). Only the lease holder
-- moves the cursor; a pod that lost its lease changes nothing and the new holder resends
-- (at-least-once: receivers dedupe on event_id).
-- KEYS[1] lease   KEYS[2] cursor   KEYS[3] dead-letter LIST
-- ARGV[1] this pod's token   ARGV[2] id of the batch's last event   ARGV[3] parked batch or ''
-- Returns 1 when moved, 0 when the lease is not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
return 1
