-- Creates a session and indexes it under its subject.
-- KEYS[1] session hash, KEYS[2] subject index
-- ARGV[1] session id, ARGV[2] expires unix ms, ARGV[3] created unix ms, ARGV[4..] field/value pairs
-- Returns 1, or 0 when a session with this id exists and is not this call's own (see below).
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- The client sends the script again when it lost the reply (a dropped connection): a session
  -- with this call's refresh hash (field 'h', of a refresh token just drawn at random) is this
  -- call's own, created by the first attempt.
  for i = 4, #ARGV - 1, 2 do
    if ARGV[i] == 'h' then
      if redis.call('HGET', KEYS[1], 'h') == ARGV[i + 1] then
        return 1
      end
      break
    end
  end
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
-- Raise the index's expiry to the latest session expiry (-1: none yet).
if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIREAT', KEYS[2], ARGV[2])
end
return 1
