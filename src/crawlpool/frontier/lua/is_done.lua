--[[
  The finished predicate, and running -> done (a compare-and-set of meta.state, with done_ms) for
  the first caller that sees it.

    Input:
      KEYS[1] meta     HASH

      ARGV[1] now_ms   or '' for Redis TIME

    Output:
      1 when nothing is queued and no URL is leased, else 0.
]]
local v = redis.call('HMGET', KEYS[1], 'queued', 'leased', 'state')
if tonumber(v[1] or '0') ~= 0 or tonumber(v[2] or '0') ~= 0 then return 0 end
if v[3] == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'done_ms', now_ms())
end
return 1
