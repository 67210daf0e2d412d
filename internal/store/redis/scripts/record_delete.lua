-- Deletes a record.
-- KEYS[1] record, KEYS[2] the kind's index
-- ARGV[1] id
-- Returns 1 when the record existed, else 0.
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
