-- Writes logins of the registry and, in the same atomic step for each, the Flinks
-- nightly-refresh state it implies. Used by shared::registry for imports, `logins add` and
-- activate / deactivate. Each login touches its own hash only. Logins' hashes share no
-- hash tag, so on Redis Cluster the caller passes one login per call; on one Redis it
-- passes a whole batch, which saves Redis a script call per login (about a quarter of an
-- import's Redis time).
--
-- The hash's Flinks fields:
--   flinks_desired            1 | 0: the IsActivated value Flinks must end up with
--   flinks_stamp              the change that set it (unique per change; jobs carry it)
--   flinks_scheduled_refresh  on | off (confirmed by Flinks), pending, failed
--   flinks_error              why the last change failed permanently
--
-- A change is due when the active flag differs from flinks_desired. A login registered
-- before this state existed and active counts as desired 1 (nightly refresh is on at
-- Flinks by default); one that was inactive has no known state, so any write sends it.
-- A new active login is `on` without a call. Writing a login whose last change failed
-- permanently tries that change again.
--
-- KEYS[i] the i-th login's hash
-- ARGV[1] now (RFC 3339), then five per login, in the order of KEYS: active (1|0), set the
-- tag (1|0), tag, stamp of the change (used if one is due), priority ('' keeps the current
-- one; '0' removes the field, so most logins store none)
-- Returns {new (1|0), change due (1|0)} per login, flat, in the order of KEYS.
local PER_LOGIN = 5
local now = ARGV[1]
if #ARGV ~= 1 + PER_LOGIN * #KEYS then
  return redis.error_reply('registry_write: expected ' .. PER_LOGIN .. ' arguments per key')
end

-- Writes the login of hash `key` from ARGV[base + 1 .. base + PER_LOGIN]; returns new, due.
local function write(key, base)
  local active, set_tag, tag = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local stamp, priority = ARGV[base + 4], ARGV[base + 5]
  local old_active = redis.call('HGET', key, 'active')
  local desired = redis.call('HGET', key, 'flinks_desired')
  if set_tag == '1' then
    redis.call('HSET', key, 'active', active, 'updated_at', now, 'tag', tag)
  else
    redis.call('HSET', key, 'active', active, 'updated_at', now)
  end
  redis.call('HSETNX', key, 'added_at', now)
  if priority == '0' then
    redis.call('HDEL', key, 'priority')
  elseif priority ~= '' then
    redis.call('HSET', key, 'priority', priority)
  end
  local new = 0
  if not old_active then
    new = 1
  end
  if not desired and old_active == '1' then
    desired = '1'
  end
  if new == 1 and active == '1' then
    redis.call('HSET', key, 'flinks_desired', '1', 'flinks_scheduled_refresh', 'on')
    return new, 0
  end
  local state = redis.call('HGET', key, 'flinks_scheduled_refresh')
  if desired == active and state ~= 'failed' then
    if not state then
      redis.call('HSET', key, 'flinks_desired', desired, 'flinks_scheduled_refresh', 'on')
    end
    return new, 0
  end
  redis.call('HSET', key, 'flinks_desired', active, 'flinks_stamp', stamp,
    'flinks_scheduled_refresh', 'pending')
  redis.call('HDEL', key, 'flinks_error')
  return new, 1
end

local out = {}
for i, key in ipairs(KEYS) do
  local new, due = write(key, 1 + (i - 1) * PER_LOGIN)
  out[#out + 1] = new
  out[#out + 1] = due
end
return out
