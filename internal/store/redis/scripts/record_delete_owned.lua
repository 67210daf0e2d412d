-- Deletes a record and its entries in the kind's index and its owner's list.
-- KEYS[1] record, KEYS[2] the kind's index, KEYS[3] the owner's list
-- ARGV[1] id
-- Returns 1 when the record existed, else 0.
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
