-- Appends one revocation event to a tenant's stream and announces the append (kind > 0), or only
-- reports whether the stream has room for the event of one token or session (kind 0). Both first
-- trim, oldest first, the entries that stopped mattering: older than the retention or past their
-- own expiry (field e). A live entry stops the trim, at most ARGV[10] entries go per call and the
-- newest entry always stays (it carries the last id), so that no call's cost grows with the
-- stream's length: the stream is only read at its two ends, a bounded number of entries at a time.
-- The floor key holds the id below which entries may be missing: the first entry's when the
-- stream is created (a cursor from before it belongs to a lost stream), then the last trimmed one's.
-- KEYS[1] stream, KEYS[2] floor
-- ARGV[1] now unix ms, ARGV[2] retention ms, ARGV[3] cap, ARGV[4] kind (0: room check),
-- ARGV[5] value, ARGV[6] cut-off unix ms (0: none), ARGV[7] expires unix ms, ARGV[8] channel,
-- ARGV[9] tenant, ARGV[10] most entries trimmed per call
-- Returns the new entry's id; for a room check, 1 when there is room and 0 when the stream holds
-- its cap of entries and the oldest still matters.
local stream, floorKey = KEYS[1], KEYS[2]
local now, retention, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local appending, batch = ARGV[4] ~= '0', tonumber(ARGV[10])

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local id, floor
if appending then
  -- Ids follow the service's clock but never go back: "<ms>-*" must exceed the last id.
  local ms = ARGV[1]
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local lastMS = parse(last[1][1])
    if lastMS > now then
      ms = string.format('%.0f', lastMS)
    end
  end
  id = redis.call('XADD', stream, ms .. '-*', 'k', ARGV[4], 'v', ARGV[5], 'c', ARGV[6], 'e', ARGV[7])
  floor = redis.call('GET', floorKey)
  if #last == 0 or not floor then
    -- A new stream, or a lost floor: whoever is behind this entry must resynchronise.
    floor = id
  end
else
  floor = redis.call('GET', floorKey)
end

local minMS = now - retention
local function dead(entry)
  if parse(entry[1]) < minMS then
    return true
  end
  local fields = entry[2]
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'e' then
      local e = tonumber(fields[i + 1])
      return e ~= nil and e <= now
    end
  end
  return false
end

-- Read from the oldest entry while all but the last read stopped mattering, twice as many each
-- time: the entries read are about twice those trimmed, and two when nothing is.
local head, n, start, want = {}, 0, '-', 2
repeat
  local got = redis.call('XRANGE', stream, start, '+', 'COUNT', want)
  for i = 1, #got do
    head[#head + 1] = got[i]
  end
  while n < #head - 1 and n < batch and dead(head[n + 1]) do
    n = n + 1
  end
  local more = #got == want and n == #head - 1 and n < batch
  if more then
    start = '(' .. head[#head][1]
    want = math.min(2 * want, batch + 1 - #head)
  end
until not more
if n > 0 then
  -- Exact, and bounded: the entries below the first kept one are the n just read.
  redis.call('XTRIM', stream, 'MINID', head[n + 1][1])
  if floor and less(floor, head[n][1]) then
    floor = head[n][1]
  end
end

if appending then
  redis.call('SET', floorKey, floor, 'PX', retention)
  redis.call('PEXPIRE', stream, retention)
  redis.call('PUBLISH', ARGV[8], ARGV[9])
  return id
end
-- A lost floor stays lost (every reader resynchronises) until the next append sets one.
if n > 0 and floor then
  redis.call('SET', floorKey, floor, 'KEEPTTL')
end
if redis.call('XLEN', stream) < cap or dead(head[n + 1]) then
  return 1
end
return 0
