-- Lists under their owner those of the records that exist (records stored before owners had
-- lists); a record deleted meanwhile stays unlisted.
-- KEYS[1] the owner's list, KEYS[2..n+1] the records
-- ARGV[1..n] their ids
-- Returns how many ids were added to the list.
local added = 0
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    added = added + redis.call('ZADD', KEYS[1], 0, id)
  end
end
return added
