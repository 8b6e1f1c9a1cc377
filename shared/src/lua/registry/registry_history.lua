-- Prepends one outcome to a login's capped history list unless the list already holds it
-- (see prepend_history). One key only (valid on Redis Cluster).
--
-- KEYS[1] history list
-- ARGV[1] outcome JSON   ARGV[2] cap (entries kept)
-- Returns 1 when prepended, 0 when it was there already.
return prepend_history(KEYS[1], ARGV[1], ARGV[2])
