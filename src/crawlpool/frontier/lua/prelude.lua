--[[
  Helpers shared by every script: the loader puts this file in front of each one, so a script is
  prelude.lua + <name>.lua and the helpers below are locals of that one chunk. Slots are `<host>#<i>`.

    Input:
      KEYS: none of its own; the helpers take key names as arguments.
      ARGV[1] now_ms: the caller's clock in ms, or '' to read Redis TIME (read by now_ms(); every
              script keeps this convention).

    Output:
      none; defines now_ms(), host_due(cfg, default_delay), rescore(host, q, d, cfg, ready, leased,
      per_host, default_delay, due), free_slot(slot, host, q, d, cfg, ready, leased, owner, per_host,
      default_delay, due) (due: host_due() if known, else false), next_wait(ready, leased, now) -> {wait_ms or -1, leased slots} and
      owner_of(owner, slot) -> the decoded owner record or false.
]]
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- When the host's next URL may start: delay after the last start, and not before a block ends.
local function host_due(cfg, default_delay)
  local v = redis.call('HMGET', cfg, 'last_start_ms', 'delay_ms', 'blocked_until_ms')
  local due = 0
  if v[1] then due = tonumber(v[1]) + tonumber(v[2] or default_delay) end
  if v[3] and tonumber(v[3]) > due then due = tonumber(v[3]) end
  return due
end

-- Score every slot of the host that nobody leases: in ready at the time its next URL may start,
-- or out of ready when the host has nothing queued or waiting to retry. `due` is host_due() when the
-- caller knows it already (false: read it). One ZMSCORE and one ZADD or ZREM for all the host's slots.
local function rescore(host, q, d, cfg, ready, leased, per_host, default_delay, due)
  local at = false
  if redis.call('LLEN', q) > 0 then
    at = due or host_due(cfg, default_delay)
  else
    local first = redis.call('ZRANGE', d, 0, 0, 'WITHSCORES')
    if first[2] then at = math.max(due or host_due(cfg, default_delay), tonumber(first[2])) end
  end
  local slots = {}
  for i = 0, per_host - 1 do slots[i + 1] = host .. '#' .. i end
  local held = redis.call('ZMSCORE', leased, unpack(slots))
  local args = {}
  for i, slot in ipairs(slots) do
    if not held[i] then
      if at then args[#args + 1] = at end
      args[#args + 1] = slot
    end
  end
  if #args > 0 then
    if at then redis.call('ZADD', ready, unpack(args)) else redis.call('ZREM', ready, unpack(args)) end
  end
end

local function free_slot(slot, host, q, d, cfg, ready, leased, owner, per_host, default_delay, due)
  redis.call('HDEL', owner, slot)
  redis.call('ZREM', leased, slot)
  rescore(host, q, d, cfg, ready, leased, per_host, default_delay, due)
end

-- ms until the earliest free slot is due (0 if one is due now), -1 if none, and how many are leased.
local function next_wait(ready, leased, now)
  local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  local wait = -1
  if first[2] then wait = math.max(0, tonumber(first[2]) - now) end
  return {wait, redis.call('ZCARD', leased)}
end

local function owner_of(owner, slot)
  local raw = redis.call('HGET', owner, slot)
  if raw then return cjson.decode(raw) end
  return false
end
