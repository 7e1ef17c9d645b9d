--[[
  The heartbeat: push the deadline of every slot the worker still owns with the given token (the
  slots of one bucket; beat.lua marks the worker's heartbeat in the crawl-wide `workers`).

    Input:
      KEYS[1]     leased    ZSET
      KEYS[2]     owner     HASH

      ARGV[1]     now_ms    or '' for Redis TIME
      ARGV[2]     lease_ms  the new deadline is now + lease_ms (never moved back)
      ARGV[3]     worker    worker id
      then per slot, from j = 4 in steps of 2:
      ARGV[j]     slot
      ARGV[j + 1] token

    Output:
      the slots that were lost (owner gone or another token), in order.
]]
local now = now_ms()
local lost = {}
for j = 4, #ARGV, 2 do
  local o = owner_of(KEYS[2], ARGV[j])
  if o and o.t == tonumber(ARGV[j + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', 'GT', now + tonumber(ARGV[2]), ARGV[j])
  else
    lost[#lost + 1] = ARGV[j]
  end
end
return lost
