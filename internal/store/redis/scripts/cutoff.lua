-- Raises a cut-off: a smaller value never replaces a larger one, and the expiry only grows.
-- KEYS[1] cut-off
-- ARGV[1] cut-off unix ms, ARGV[2] TTL ms (positive)
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
-- PTTL is -1 for a key without expiry, which a cut-off must not stay.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
