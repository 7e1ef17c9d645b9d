--[[
  Lease up to n free slots that are due now: each leaves ready, enters leased with a deadline, and
  gets an owner record {w = worker, t = token, n = 0} with a fresh fencing token: INCRBY tok gives
  values v, and token = v * stride + offset, so the tokens of a crawl's buckets never meet.

    Input:
      KEYS[1] ready      ZSET
      KEYS[2] leased     ZSET
      KEYS[3] owner      HASH
      KEYS[4] tok        STRING

      ARGV[1] now_ms     or '' for Redis TIME
      ARGV[2] lease_ms   lease period: the deadline is now + lease_ms
      ARGV[3] worker     worker id
      ARGV[4] n          most slots to lease (0: none, only the wait answer)
      ARGV[5] stride     the crawl's number of buckets
      ARGV[6] offset     this bucket's index (0 .. stride - 1)

    Output:
      {{slot_1, token_1, slot_2, token_2, ...}, {wait_ms, leased_slots}}: wait_ms is the time until
      the earliest free slot left in ready is due (0: due now, -1: none), leased_slots is ZCARD leased.
]]
local now = now_ms()
local out = {}
local n = tonumber(ARGV[4])
if n > 0 then
  local slots = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
  if #slots > 0 then
    -- One command per key for the whole batch: tokens last - #slots + 1 .. last, one per slot.
    local last = redis.call('INCRBY', KEYS[4], #slots)
    local stride, offset = tonumber(ARGV[5]), tonumber(ARGV[6])
    -- Each number given to a command or to JSON is formatted: the deadline once, each owner record
    -- by one format (the JSON cjson would write, at half its cost).
    local deadline = int(now + tonumber(ARGV[2]))
    local worker = cjson.encode(ARGV[3])
    local deadlines, owners = {}, {}
    for i, slot in ipairs(slots) do
      local token = (last - #slots + i) * stride + offset
      deadlines[#deadlines + 1] = deadline
      deadlines[#deadlines + 1] = slot
      owners[#owners + 1] = slot
      owners[#owners + 1] = string.format('{"w":%s,"t":%d,"n":0}', worker, token)
      out[#out + 1] = slot
      out[#out + 1] = token
    end
    redis.call('ZREM', KEYS[1], unpack(slots))
    redis.call('ZADD', KEYS[2], unpack(deadlines))
    redis.call('HSET', KEYS[3], unpack(owners))
  end
end
return {out, next_wait(KEYS[1], KEYS[2], now)}
