-- Writes logins of the registry and, in the same atomic step for each, the Flinks
-- nightly-refresh state it implies. Used by shared::registry for imports, `logins add` and
-- activate / deactivate. Each login touches its own hash only. Logins' hashes share no
-- hash tag, so on Redis Cluster the caller passes one login per call; on one Redis it
-- passes a whole batch, which saves Redis a script call per login (about a quarter of an
-- import's Redis time). Each login is one read and one write (and a delete only when a
-- field must go): every command a script calls costs Redis about as much again as the
-- work it does on a small hash.
--
-- The hash's Flinks fields:
--   flinks_desired            1 | 0: the IsActivated value Flinks must end up with
--   flinks_stamp              the change that set it (unique per change; jobs carry it)
--   flinks_scheduled_refresh  on | off (confirmed by Flinks), pending, failed
--   flinks_error              why the last change failed permanently
--
-- A change is due when the active flag differs from flinks_desired. An active login
-- without these fields is desired 1 and `on` (nightly refresh is on at Flinks by default):
-- so a new active login, `on` without a call, stores none of them (about 50 bytes of each
-- of a million hashes), and neither does a login registered before this state existed.
-- An inactive login without them has no known state, so any write sends it. Writing a
-- login whose last change failed permanently tries that change again.
--
-- `added_at` is epoch milliseconds: Redis keeps a number in a compact hash as an integer
-- of at most 9 bytes, against 24 for the time as text (which earlier versions wrote, and
-- readers still accept).
--
-- KEYS[i] the i-th login's hash
-- ARGV[1] now (epoch ms: `added_at` of a new login), then five per login, in the order of
-- KEYS: active (1|0), set the tag (1|0), tag, stamp of the change (used if one is due),
-- priority ('' keeps the current one; '0' removes the field, so most logins store none)
-- Returns {new (1|0), change due (1|0)} per login, flat, in the order of KEYS.
local PER_LOGIN = 5
local now = ARGV[1]
if #ARGV ~= 1 + PER_LOGIN * #KEYS then
  return redis.error_reply('registry_write: expected ' .. PER_LOGIN .. ' arguments per key')
end

-- Writes the login of hash `key` from ARGV[base + 1 .. base + PER_LOGIN]; returns new, due.
-- What it reads: the active flag, the Flinks state, and whether `added_at` (written only
-- when absent), `priority`, `flinks_error` and `updated_at` (deleted only when present)
-- are there.
local function write(key, base)
  local active, set_tag, tag = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local stamp, priority = ARGV[base + 4], ARGV[base + 5]
  local current = redis.call('HMGET', key, 'active', 'flinks_desired',
    'flinks_scheduled_refresh', 'added_at', 'priority', 'flinks_error', 'updated_at')
  local old_active, desired, state = current[1], current[2], current[3]
  local set = { 'active', active }
  local del = {}
  -- Earlier versions stamped every write in `updated_at`, which nothing reads: 36 bytes
  -- of every login hash, dropped when the login is next written.
  if current[7] then
    del[#del + 1] = 'updated_at'
  end
  if set_tag == '1' then
    set[#set + 1] = 'tag'
    set[#set + 1] = tag
  end
  if not current[4] then
    set[#set + 1] = 'added_at'
    set[#set + 1] = now
  end
  if priority == '0' then
    if current[5] then
      del[#del + 1] = 'priority'
    end
  elseif priority ~= '' then
    set[#set + 1] = 'priority'
    set[#set + 1] = priority
  end
  local new, due = 0, 0
  if not old_active then
    new = 1
  end
  if not desired and old_active == '1' then
    desired = '1'
  end
  if new == 1 and active == '1' then
    desired = '1'
  end
  if desired == active and state ~= 'failed' then
    -- Nothing due. An active login without a stored state is `on` (see the top); any
    -- other gets its state stored.
    if not state and active ~= '1' then
      set[#set + 1] = 'flinks_desired'
      set[#set + 1] = desired
      set[#set + 1] = 'flinks_scheduled_refresh'
      set[#set + 1] = 'on'
    end
  else
    due = 1
    set[#set + 1] = 'flinks_desired'
    set[#set + 1] = active
    set[#set + 1] = 'flinks_stamp'
    set[#set + 1] = stamp
    set[#set + 1] = 'flinks_scheduled_refresh'
    set[#set + 1] = 'pending'
    if current[6] then
      del[#del + 1] = 'flinks_error'
    end
  end
  redis.call('HSET', key, unpack(set))
  if #del > 0 then
    redis.call('HDEL', key, unpack(del))
  end
  return new, due
end

local out = {}
for i, key in ipairs(KEYS) do
  local new, due = write(key, 1 + (i - 1) * PER_LOGIN)
  out[#out + 1] = new
  out[#out + 1] = due
end
return out
