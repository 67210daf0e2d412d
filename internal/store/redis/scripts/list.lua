-- Reads the next entries of a subject's session index in list order (newest first: score, the
-- creation time, descending, then session id descending) after a cursor, and prunes entries that a
-- cut-off ended. Every step is O(log n) plus what it returns or removes, whatever the index holds.
-- KEYS[1] subject index
-- ARGV[1] cursor: creation unix ms of the last session listed ('' for the start of the list),
-- ARGV[2] cursor: its session id, ARGV[3] floor: entries scored at or below it were ended by a
-- cut-off ('' for none), ARGV[4] how many entries to return at most (positive), ARGV[5] how many
-- ended entries to remove at most
-- Returns the entries after the cursor and above the floor, flat: id, score, id, score, ...
local idx = KEYS[1]
local count, prune = tonumber(ARGV[4]), tonumber(ARGV[5])
local floor
if ARGV[3] ~= '' then
  floor = tonumber(ARGV[3])
  if prune > 0 then
    -- The lowest ranks hold the lowest scores: the ended entries, oldest first.
    local ended = redis.call('ZCOUNT', idx, '-inf', ARGV[3])
    if ended > 0 then
      redis.call('ZREMRANGEBYRANK', idx, 0, math.min(ended, prune) - 1)
    end
  end
end
-- start is the rank, in list order, of the first entry after the cursor.
local start = 0
if ARGV[1] ~= '' then
  local score = redis.call('ZSCORE', idx, ARGV[2])
  if not score then
    -- The cursor's session left the index (deleted, expired, pruned). Its rank is where it would
    -- stand, among sessions of the same millisecond too; adding it for the lookup is invisible
    -- outside this script, and removing it again restores the index as it was.
    redis.call('ZADD', idx, ARGV[1], ARGV[2])
    start = redis.call('ZREVRANK', idx, ARGV[2])
    redis.call('ZREM', idx, ARGV[2])
  elseif tonumber(score) == tonumber(ARGV[1]) then
    start = redis.call('ZREVRANK', idx, ARGV[2]) + 1
  else
    -- A cursor naming a listed session with another creation time was not made here: go on after
    -- every entry of the cursor's millisecond rather than fail.
    start = redis.call('ZCOUNT', idx, ARGV[1], '+inf')
  end
end
local entries = redis.call('ZREVRANGE', idx, start, start + count - 1, 'WITHSCORES')
if floor then
  for i = 2, #entries, 2 do
    if tonumber(entries[i]) <= floor then
      return {unpack(entries, 1, i - 2)}
    end
  end
end
return entries
