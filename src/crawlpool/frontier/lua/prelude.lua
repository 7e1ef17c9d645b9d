--[[
  Helpers shared by every script: the loader puts this file in front of each one, so a script is
  prelude.lua + <name>.lua and the helpers below are locals of that one chunk. Slots are `<host>#<i>`.

    Input:
      KEYS: none of its own; the helpers take key names as arguments.
      ARGV[1] now_ms: the caller's clock in ms, or '' to read Redis TIME (read by now_ms(); every
              script keeps this convention).

    Output:
      none; defines int(n) (an integer as a command argument), now_ms(), host_due(cfg, default_delay), rescore(host, q, d, cfg, ready, leased,
      per_host, default_delay, due), free_slot(slot, host, q, d, cfg, ready, leased, owner, per_host,
      default_delay, due) (due: host_due() if known, else false), next_wait(ready, leased, now) -> {wait_ms or -1, leased slots},
      owner_of(owner, slot) -> the decoded owner record or false, and apply_pace(now, host, cfg,
      paced, default_delay, event, a6, a7, a8, held) -> pace JSON, next start moved, delay_ms,
      last_start_ms, host fields to write (pace.lua's step, which end.lua also takes for the answer
      an ack brings).
]]
-- An integer as a command argument: Redis formats a Lua number with %.17g, a floating-point
-- conversion that cost an ack more instructions than most of its commands (measured with callgrind).
local function int(n)
  if n == 1 then return '1' elseif n == -1 then return '-1' end  -- a counter's usual step, unformatted
  return string.format('%d', n)
end

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

-- One event applied to a host's pacing (pace.lua's contract: `policy.pacing.next_pace` in Lua, the
-- rule's constants written in by the loader): event 'answer' (a6 status or '', a7 elapsed ms, a8 error
-- code or ''), 'floor' (a6 the new floor in s) or 'block' (a6 for how many ms). Writes a new block and
-- the host's place in `paced`; works out its pace, delay_ms, a block that is over (0) and, for an
-- answer, its last start: a worker may send a while after its lease began (schedule.request_start),
-- so with a delay the next start waits from now - elapsed when that is later. Returns the pace as
-- JSON, whether the host's next start moved (a new delay, a new block or a later last start: its free
-- slots need a rescore), its new delay_ms, its last_start_ms (or false) and the host fields to write:
-- `HSET cfg unpack(fields)`, which the caller does, once with any fields of its own. `held`: the
-- host's pace, blocked_until_ms and last_start_ms when the caller read them already (nil: read).
local function apply_pace(now, host, cfg, paced, default_delay, event, a6, a7, a8, held)
  held = held or redis.call('HMGET', cfg, 'pace', 'blocked_until_ms', 'last_start_ms')
  local raw, old_blocked, last_start = held[1], held[2], held[3]
  local pace
  if raw then pace = cjson.decode(raw) else pace = {default_delay / 1000, 0, 0, 0} end
  local floor, extra, baseline, answers = pace[1], pace[2], pace[3], pace[4]
  local old_delay = math.floor((floor + extra) * 1000 + 0.5)  -- delay_ms is written with the pace
  if event == 'block' then
    local blocked = now + tonumber(a6)
    if not old_blocked or tonumber(old_blocked) < blocked then
      redis.call('HSET', cfg, 'blocked_until_ms', blocked)
    end
  elseif event == 'floor' then
    floor = math.max(floor, tonumber(a6))
  else
    -- K.<name>: the rule's constants (`policy.pacing.PACE_RULE`), written in as literals by the loader.
    local status = tonumber(a6)
    local elapsed = tonumber(a7)
    local overloaded = a8 == 'timeout' or K.overload(status)
      or (answers >= K.warmup and elapsed >= K.slow_min_ms and elapsed >= K.slow_factor * baseline)
    if overloaded then
      extra = math.min(K.max_extra_s, math.max(K.step_s, extra * 2))
    elseif status and status < 500 then
      extra = math.max(0, extra - math.max(K.step_s, extra * K.recovery))
    end
    if status then
      if answers == 0 then
        baseline = elapsed
      else
        local weight = K.up_weight
        if elapsed < baseline then weight = K.down_weight end
        baseline = baseline + weight * (elapsed - baseline)
      end
      answers = answers + 1
    end
  end
  -- What cjson.encode would write (its numbers are %.14g), in one format instead of four.
  local after = string.format('[%.14g,%.14g,%.14g,%.14g]', floor, extra, baseline, answers)
  local delay_ms = math.floor((floor + extra) * 1000 + 0.5)
  local moved = event == 'block' or old_delay ~= delay_ms
  local fields = {'pace', after}
  if moved then fields[3] = 'delay_ms'; fields[4] = int(delay_ms) end  -- most answers keep the delay
  local blocked_until = tonumber(old_blocked or '0')
  if event == 'block' then blocked_until = math.max(blocked_until, now + tonumber(a6)) end
  if extra > 0 or blocked_until > now then
    redis.call('ZADD', paced, blocked_until, host)
  elseif pace[2] > 0 or blocked_until > 0 then
    redis.call('ZREM', paced, host)  -- it may be listed: it was backed off or blocked
    -- A block that is over schedules nothing: 0 says so, and no later answer removes it again.
    if blocked_until > 0 then fields[#fields + 1] = 'blocked_until_ms'; fields[#fields + 1] = '0' end
  end
  local started = event == 'answer' and delay_ms > 0 and (a6 ~= '' or tonumber(a7) > 0)
    and now - tonumber(a7)
  if started and (not last_start or started > tonumber(last_start)) then
    last_start = started
    fields[#fields + 1] = 'last_start_ms'
    fields[#fields + 1] = int(started)
    moved = true
  end
  return after, moved, delay_ms, last_start, fields
end
