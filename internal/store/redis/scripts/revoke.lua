-- Marks a jti of a live session of the tenant revoked until a time; a later mark wins.
-- KEYS[1] session hash, KEYS[2] jti revocation mark
-- ARGV[1] tenant, ARGV[2] until unix ms
-- Returns 1 when the session exists, else 0.
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[2])
end
return 1
