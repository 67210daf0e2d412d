-- Appends one revocation event to a tenant's stream, trims the stream and announces the append.
-- The floor key holds the id below which entries may be missing: the first entry's when the
-- stream is created (a cursor from before it belongs to a lost stream), then the last trimmed one's.
-- KEYS[1] stream, KEYS[2] floor
-- ARGV[1] now unix ms, ARGV[2] retention ms, ARGV[3] cap, ARGV[4] kind, ARGV[5] value,
-- ARGV[6] cut-off unix ms (0: none), ARGV[7] expires unix ms, ARGV[8] channel, ARGV[9] tenant
local stream, floorKey = KEYS[1], KEYS[2]
local now, retention, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

-- Ids follow the service's clock but never go back: "<ms>-*" must exceed the last id.
local ms = ARGV[1]
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
if #last > 0 then
  local lastMS = parse(last[1][1])
  if lastMS > now then
    ms = string.format('%.0f', lastMS)
  end
end
local id = redis.call('XADD', stream, ms .. '-*', 'k', ARGV[4], 'v', ARGV[5], 'c', ARGV[6], 'e', ARGV[7])

local floor = redis.call('GET', floorKey)
if #last == 0 or not floor then
  -- A new stream, or a lost floor: whoever is behind this entry must resynchronise.
  floor = id
end

-- Trim what is older than the retention.
local minID = string.format('%.0f', now - retention) .. '-0'
local old = redis.call('XREVRANGE', stream, '(' .. minID, '-', 'COUNT', 1)
if #old > 0 then
  redis.call('XTRIM', stream, 'MINID', minID)
  if less(floor, old[1][1]) then
    floor = old[1][1]
  end
end
-- Then what is beyond the cap.
local excess = redis.call('XLEN', stream) - cap
if excess > 0 then
  local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
  redis.call('XTRIM', stream, 'MAXLEN', cap)
  if less(floor, gone[#gone][1]) then
    floor = gone[#gone][1]
  end
end

redis.call('SET', floorKey, floor, 'PX', retention)
redis.call('PEXPIRE', stream, retention)
redis.call('PUBLISH', ARGV[8], ARGV[9])
return id
