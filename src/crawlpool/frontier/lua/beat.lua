--[[
  Mark a worker's heartbeat, on the crawl's clock (the only crawl-wide write of a running worker:
  once per heartbeat).

    Input:
      KEYS[1] workers    ZSET

      ARGV[1] now_ms     or '' for Redis TIME
      ARGV[2] worker     worker id

    Output:
      now in ms.
]]
local now = now_ms()
redis.call('ZADD', KEYS[1], now, ARGV[2])
return now
