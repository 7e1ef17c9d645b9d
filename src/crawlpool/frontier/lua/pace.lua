--[[
  Change a host's delay and/or block it for a while, for every worker; then re-score its free slots.

    Input:
      KEYS[1] ready          ZSET
      KEYS[2] leased         ZSET
      KEYS[3] q:<host>       LIST
      KEYS[4] retry:<host>   ZSET
      KEYS[5] host:<host>    HASH

      ARGV[1] now_ms         or '' for Redis TIME
      ARGV[2] per_host
      ARGV[3] delay_ms       the crawl's default delay
      ARGV[4] host
      ARGV[5] new delay ms, or '' to keep it
      ARGV[6] blocked-for ms, or '': blocked_until_ms = now + it (only ever moved later)

    Output:
      1
]]
local now = now_ms()
if ARGV[5] ~= '' then redis.call('HSET', KEYS[5], 'delay_ms', ARGV[5]) end
if ARGV[6] ~= '' then
  local blocked = now + tonumber(ARGV[6])
  local old = redis.call('HGET', KEYS[5], 'blocked_until_ms')
  if not old or tonumber(old) < blocked then redis.call('HSET', KEYS[5], 'blocked_until_ms', blocked) end
end
rescore(ARGV[4], KEYS[3], KEYS[4], KEYS[5], KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
