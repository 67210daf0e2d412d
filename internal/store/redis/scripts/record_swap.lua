-- Replaces a record's value if it still holds the value the caller read (compare-and-swap).
-- KEYS[1] record
-- ARGV[1] the value read, ARGV[2] the new value
-- Returns 1 when swapped, 0 when the record holds another value, -1 when it does not exist.
local cur = redis.call('GET', KEYS[1])
if not cur then
  return -1
end
if cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
