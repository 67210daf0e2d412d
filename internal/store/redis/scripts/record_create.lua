-- Creates a record that must not exist yet.
-- KEYS[1] record, KEYS[2] the kind's index
-- ARGV[1] id, ARGV[2] value
-- Returns 1, or 0 when the record exists.
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  return 0
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
