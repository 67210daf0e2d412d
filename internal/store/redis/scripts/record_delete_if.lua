-- Deletes a record if it still holds the value the caller read (compare-and-delete).
-- KEYS[1] record, KEYS[2] the kind's index
-- ARGV[1] id, ARGV[2] the value read
-- Returns 1 when deleted, 0 when the record holds another value or does not exist.
local cur = redis.call('GET', KEYS[1])
if not cur or cur ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
