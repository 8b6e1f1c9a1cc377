-- Promote at most ARGV[1] due delayed jobs to ready. Returns how many moved.
return promote(now_ms(), tonumber(ARGV[1]) or 1000)
