-- Applies one outcome to a login's registry hash (see apply_outcome). It touches one key
-- only, so it is valid on Redis Cluster; the history list, in another slot, is written by
-- registry_history.lua after this script applied the outcome.
--
-- KEYS[1] login hash
-- ARGV[1] the outcome's score (epoch ms)   ARGV[2] n, the number of field/value pairs
-- ARGV[3 .. 2+2n] field/value pairs to set   ARGV[3+2n ..] fields to delete
-- Returns 1 when applied, 0 when the hash holds a later outcome.
local applied = apply_outcome(KEYS[1], ARGV[1], ARGV[2], 3, #ARGV)
return applied
