-- Raises a cut-off: a smaller value never replaces a larger one, and the expiry only grows.
-- KEYS[1] cut-off, KEYS[2] (subject cut-offs only) the subject's session index
-- ARGV[1] cut-off unix ms, ARGV[2] TTL ms (positive), ARGV[3] (with KEYS[2]) how many index
-- entries to remove at most
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
-- PTTL is -1 for a key without expiry, which a cut-off must not stay.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
-- The sessions the cut-off ended are never listed again: their index entries go, up to ARGV[3] of
-- them (the lowest ranks are the oldest), so that the work stays bounded; listing removes the rest.
if KEYS[2] then
  local ended = redis.call('ZCOUNT', KEYS[2], '-inf', redis.call('GET', KEYS[1]))
  if ended > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, math.min(ended, tonumber(ARGV[3])) - 1)
  end
end
return 1
