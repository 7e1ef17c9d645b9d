--[[
  Record how far a worker's records are in its manifest (its claim), and trim its records stream to
  that point (redis_trim.py says why this is safe).

    Input:
      KEYS[1] records:<w>  STREAM, the worker's records
      KEYS[2] claims       HASH, worker → claim: its records below that stream id are in its manifest

      ARGV[1] now_ms   or '' for Redis TIME (unused: stream ids are Redis TIME, see keep_ms)
      ARGV[2] worker   worker id
      ARGV[3] claim    a stream id (moves the claim forward, never back); 'join' (claim the stream's
                       last id unless the worker has a claim: a resumed worker keeps its old one until
                       it confirms); 'leave' (all its records are in its manifest: claim the last id)
      ARGV[4] keep_ms  records younger than this on Redis' clock are never trimmed (status reads them
                       for its rates); nor is the stream's last entry (status' "updated")

    Output:
      the stream's last id, or '0-0' when it is empty
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

local stream, claims, worker, claim = KEYS[1], KEYS[2], ARGV[2], ARGV[3]
local tip = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local last = tip[1] and tip[1][1] or '0-0'
local held = redis.call('HGET', claims, worker)
if claim == 'join' then
  if held then return last end
  claim = last
elseif claim == 'leave' then
  claim = last
end
if held and before(claim, held) then claim = held end
redis.call('HSET', claims, worker, claim)

local time = redis.call('TIME')
local server_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cut = math.max(0, server_ms - tonumber(ARGV[4])) .. '-0'
if before(claim, cut) then cut = claim end
if before(last, cut) then cut = last end
redis.call('XTRIM', stream, 'MINID', cut)
return last
