-- `producer logins reconnected`: the user relinked the login, so its re-auth is over. One
-- atomic step clears its entries from the re-auth index, closes its needs_reauth episode
-- and appends the `reauth_resolved` event (no cleared state without its event).
--
-- KEYS[1] events stream   KEYS[2] episode HASH   KEYS[3] reauth index (ZSET)
-- ARGV[1] LoginId   ARGV[2] routine date (YYYY-MM-DD)   ARGV[3] now, RFC 3339
-- ARGV[4] now, epoch ms   ARGV[5..] the login's reauth index members to remove
-- Returns {index entries removed, event_id or ''}. An event is appended when the login had
-- an open needs_reauth episode, or index entries from before episodes were kept; a second
-- call finds neither and appends nothing.
local removed = 0
for i = 5, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[3], ARGV[i])
end
local episode = redis.call('HGET', KEYS[2], ARGV[1])
local episode_type, episode_start = false, false
if episode then
  episode_type, episode_start = string.match(episode, '^([%a_]+)|(.*)$')
end
if episode_type ~= 'needs_reauth' and removed == 0 then
  return {removed, ''}
end
if episode_type == 'needs_reauth' then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local discriminator = episode_start or (ARGV[2] .. '|' .. ARGV[4])
local event_id = string.sub(redis.sha1hex('reauth_resolved|' .. ARGV[1] .. '|' .. discriminator), 1, 32)
redis.call('XADD', KEYS[1], '*', 'event_id', event_id, 'type', 'reauth_resolved',
  'login_id', ARGV[1], 'routine_date', ARGV[2], 'at', ARGV[3], 'source', 'reconnected')
return {removed, event_id}
