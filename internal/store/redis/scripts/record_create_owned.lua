-- Creates a record that must not exist yet and lists it under its owner, unless the owner's list
-- is full.
-- KEYS[1] record, KEYS[2] the kind's index, KEYS[3] the owner's list
-- ARGV[1] id, ARGV[2] value, ARGV[3] the most records the owner may list (0: no limit)
-- Returns 1, 0 when the record exists, or -1 when the owner's list is full.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[3]) >= limit then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
