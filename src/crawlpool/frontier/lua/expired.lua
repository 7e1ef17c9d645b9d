--[[
  The first, read-only step of a reap: list leased slots whose deadline has passed.

    Input:
      KEYS[1] leased   ZSET

      ARGV[1] now_ms   or '' for Redis TIME
      ARGV[2] n        most slots to list

    Output:
      up to n slots with deadline <= now, earliest first.
]]
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
