--[[
  Record how far a worker's records are in its manifest (its claim), then trim the records stream to
  what every live worker confirmed (redis_trim.py says why this is safe). A dead worker's records past
  its claim are first copied, with their ids, to `kept`, where they stay until it confirms them.

    Input:
      KEYS[1] records  STREAM
      KEYS[2] kept     STREAM, records of dead workers the main stream was trimmed past
      KEYS[3] claims   HASH, worker → '<claim> <copied>': its records below claim are in its
                       manifest; those in [claim, copied) were copied to kept
      KEYS[4] workers  ZSET, worker → last heartbeat ms
      KEYS[5] leases   HASH, worker → lease ms (every worker that opened and did not close)

      ARGV[1] now_ms   or '' for Redis TIME
      ARGV[2] worker   worker id
      ARGV[3] claim    a stream id (moves the worker's claim forward, never back); 'join' (claim the
                       stream's end unless the worker has a claim); 'leave' (drop the claim: all its
                       records are in its manifest); '' (no change). All but 'leave' mark the worker
                       alive in workers.
      ARGV[4] keep_ms  records younger than this on Redis' clock (stream ids are Redis TIME, whatever
                       now_ms is) are never trimmed: status reads them for its rates
      ARGV[5] scan     at most this many entries looked at in records and in kept per call

    Output:
      {last id of records or '0-0', the trim point or '' when nothing may be trimmed}
]]
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function field(entry, name)
  local f = entry[2]
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
end
local function hash(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local now = now_ms()
local worker, claim, scan = ARGV[2], ARGV[3], tonumber(ARGV[5])
local records, kept, claims = KEYS[1], KEYS[2], KEYS[3]
local tip = redis.call('XREVRANGE', records, '+', '-', 'COUNT', 1)
local last = tip[1] and tip[1][1] or '0-0'

if claim ~= 'leave' then redis.call('ZADD', KEYS[4], now, worker) end
if claim == 'join' then
  redis.call('HSETNX', claims, worker, last .. ' ' .. last)
elseif claim == 'leave' then
  redis.call('HDEL', claims, worker)
elseif claim ~= '' then
  local old = redis.call('HGET', claims, worker)
  local c, copied = claim, claim
  if old then
    c, copied = string.match(old, '^(%S+) (%S+)$')
    if before(c, claim) then c = claim end
    if before(copied, c) then copied = c end
  end
  redis.call('HSET', claims, worker, c .. ' ' .. copied)
end

-- A worker that opened without claiming (an older version) may need every record: trim nothing.
local leases = hash(redis.call('HGETALL', KEYS[5]))
local held = {}
for w, v in pairs(hash(redis.call('HGETALL', claims))) do
  local c, copied = string.match(v, '^(%S+) (%S+)$')
  held[w] = {c, copied}
end
for w in pairs(leases) do
  if not held[w] and not (claim == 'leave' and w == worker) then return {last, ''} end
end

local cut = last
local dead, from = {}, nil
for w, h in pairs(held) do
  local beat = redis.call('ZSCORE', KEYS[4], w)
  if beat and now - tonumber(beat) <= tonumber(leases[w] or '60000') then
    if before(h[1], cut) then cut = h[1] end
  else
    dead[w] = true
    local start = before(h[1], h[2]) and h[2] or h[1]
    if not from or before(start, from) then from = start end
  end
end
local time = redis.call('TIME')
local server_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local young = math.max(0, server_ms - tonumber(ARGV[4])) .. '-0'
if before(young, cut) then cut = young end

-- Copy the dead workers' records below the cut to kept, a bounded number per call.
if from and before(from, cut) then
  local entries = redis.call('XRANGE', records, from, '(' .. cut, 'COUNT', scan)
  for _, e in ipairs(entries) do
    local w = field(e, 'worker')
    if dead[w] then
      local h = held[w]
      if not before(e[1], h[1]) and not before(e[1], h[2]) then
        -- pcall: an entry copied by an earlier call that stopped short is not copied twice
        redis.pcall('XADD', kept, e[1], unpack(e[2]))
      end
    end
  end
  if #entries == scan then
    local ms, seq = parse(entries[#entries][1])
    cut = ms .. '-' .. (seq + 1)
  end
  for w in pairs(dead) do
    local h = held[w]
    if before(h[2], cut) and not before(cut, h[1]) then
      redis.call('HSET', claims, w, h[1] .. ' ' .. cut)
    end
  end
end
redis.call('XTRIM', records, 'MINID', cut)

-- Forget what kept holds for workers that confirmed it since, or that left with everything confirmed.
local gone = {}
for _, e in ipairs(redis.call('XRANGE', kept, '-', '+', 'COUNT', scan)) do
  local h = held[field(e, 'worker')]
  if not h or before(e[1], h[1]) then gone[#gone + 1] = e[1] end
end
if #gone > 0 then redis.call('XDEL', kept, unpack(gone)) end
return {last, cut}
