-- Ends a session of the tenant.
-- KEYS[1] session hash, KEYS[2] subject index
-- ARGV[1] tenant, ARGV[2] session id
-- Returns 1 when a session was deleted, else 0.
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
