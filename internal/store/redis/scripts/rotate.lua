-- One refresh attempt (token.RotateRequest).
-- KEYS[1] session hash, KEYS[2] subject index, KEYS[3] subject cut-off
-- ARGV[1] tenant, ARGV[2] session id, ARGV[3] presented generation, ARGV[4] presented hash,
-- ARGV[5] new hash, ARGV[6] now unix ms, ARGV[7] grace ms, ARGV[8] presented generation + 1
-- Returns {0} (invalid), or {outcome, HGETALL of the session}: 1 rotated, 2 retry, 3 reuse (the
-- session as it was before its deletion).
local s = redis.call('HMGET', KEYS[1], 't', 'c', 'g', 'h', 'r')
if s[1] ~= ARGV[1] then
  return {0}
end
local cut = redis.call('GET', KEYS[3])
-- A cut-off ends every session created at or before it (token.EndedBy).
if cut and tonumber(s[2]) <= tonumber(cut) then
  return {0}
end
local g = tonumber(s[3])
local presented = tonumber(ARGV[3])
if presented == g and s[4] == ARGV[4] then
  redis.call('HSET', KEYS[1], 'g', ARGV[8], 'h', ARGV[5], 'r', ARGV[6])
  return {1, redis.call('HGETALL', KEYS[1])}
end
if presented == g - 1 and tonumber(ARGV[6]) - tonumber(s[5]) <= tonumber(ARGV[7]) then
  return {2, redis.call('HGETALL', KEYS[1])}
end
if presented < g then
  local before = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {3, before}
end
return {0}
