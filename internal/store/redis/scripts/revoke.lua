-- Marks a jti of a live session of the tenant revoked until a time (a later mark wins), with its
-- announcement pending; for a session that is not there, writes nothing.
-- A mark holds "p:<tenant>" while its announcement is pending, then "a:<tenant>" (announced.lua).
-- KEYS[1] session hash, KEYS[2] jti revocation mark
-- ARGV[1] tenant, ARGV[2] until unix ms
-- Returns {revoked, announce}: revoked is 1 when this call marked a jti that was not marked;
-- announce is 1 while the mark's announcement is pending.
local pending = 'p:' .. ARGV[1]
local mark = redis.call('GET', KEYS[2])
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return {0, mark == pending and 1 or 0}
end
if not mark then
  redis.call('SET', KEYS[2], pending, 'PXAT', ARGV[2])
  return {1, 1}
end
if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], mark, 'PXAT', ARGV[2])
end
return {0, mark == pending and 1 or 0}
