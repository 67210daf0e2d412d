-- Reads what CheckAccess needs from the subject's slot.
-- KEYS[1] session hash, KEYS[2] jti revocation mark, KEYS[3] subject cut-off
-- ARGV[1] tenant
-- Returns {0} when no session of the tenant exists, else {1, created ms, revoked 0/1, cut-off ms or ''}.
local s = redis.call('HMGET', KEYS[1], 't', 'c')
if s[1] ~= ARGV[1] then
  return {0}
end
return {1, s[2], redis.call('EXISTS', KEYS[2]), redis.call('GET', KEYS[3]) or ''}
