-- Ends a session of the tenant and leaves a tombstone in its place until every access token of
-- the session has expired, with the end's announcement pending; for a session that is not there,
-- writes nothing.
-- A tombstone holds "p:<tenant>" while its announcement is pending, then "a:<tenant>"
-- (announced.lua).
-- KEYS[1] session hash, KEYS[2] subject index, KEYS[3] tombstone
-- ARGV[1] tenant, ARGV[2] session id, ARGV[3] tombstone expiry unix ms
-- Returns {ended, announce}: ended is 1 when a session was deleted; announce is 1 while the
-- tombstone's announcement is pending.
local pending = 'p:' .. ARGV[1]
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return {0, redis.call('GET', KEYS[3]) == pending and 1 or 0}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], pending, 'PXAT', ARGV[3])
return {1, 1}
