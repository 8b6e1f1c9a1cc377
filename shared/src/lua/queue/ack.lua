-- Acknowledge a finished job: drop its hash; optionally keep a small record of it for a
-- while in KEYS[N_KEYS + 1]. ARGV[1] id, ARGV[2] delivery token, ARGV[3] retention (ms, 0 = none).
-- Returns 1, or 0 when that delivery no longer holds the job's lease (nothing is changed).
if finish(ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, KEYS[N_KEYS + 1]) then
  return 1
end
return 0
