--[[
  Apply one event to a host's pacing, for every worker of the crawl at once, then re-score its free
  slots. This is `policy.pacing.next_pace` in Lua, so that the read, the rule and the write are one
  atomic step: two workers' backoffs add up, never overwrite each other. Its numbers come from the
  Python module in ARGV[9], and tests/test_redis_scripts.py replays the Python rule's table through it.

    Input:
      KEYS[1] ready          ZSET
      KEYS[2] leased         ZSET
      KEYS[3] q:<host>       LIST
      KEYS[4] retry:<host>   ZSET
      KEYS[5] host:<host>    HASH   fields pace (JSON [floor_s, extra_s, baseline_ms, answers]),
                                    delay_ms (floor + extra), blocked_until_ms
      KEYS[6] h:paced        ZSET   host → blocked_until_ms, for hosts backed off or blocked (status)

      ARGV[1] now_ms         or '' for Redis TIME
      ARGV[2] per_host
      ARGV[3] delay_ms       the crawl's default delay: the floor of a host never paced before
      ARGV[4] host
      ARGV[5] event          'answer', 'floor' or 'block'
      ARGV[6] answer: the status, or '' for none; floor: the new floor in s; block: for how many ms
      ARGV[7] answer: elapsed ms
      ARGV[8] answer: the error code, or ''
      ARGV[9] the rule's constants, JSON {step_s, max_extra_s, slow_factor, slow_min_ms, down_weight,
              up_weight, warmup, recovery, overload: [statuses]}

    Output:
      the host's pace after the event, as JSON [floor_s, extra_s, baseline_ms, answers]
]]
local now = now_ms()
local host_key = KEYS[5]
local held = redis.call('HMGET', host_key, 'pace', 'blocked_until_ms', 'delay_ms')
local raw, old_blocked, old_delay = held[1], held[2], held[3]
local pace
if raw then pace = cjson.decode(raw) else pace = {tonumber(ARGV[3]) / 1000, 0, 0, 0} end
local floor, extra, baseline, answers = pace[1], pace[2], pace[3], pace[4]
local event = ARGV[5]

if event == 'block' then
  local blocked = now + tonumber(ARGV[6])
  if not old_blocked or tonumber(old_blocked) < blocked then
    redis.call('HSET', host_key, 'blocked_until_ms', blocked)
  end
elseif event == 'floor' then
  floor = math.max(floor, tonumber(ARGV[6]))
else
  local c = cjson.decode(ARGV[9])
  local status = tonumber(ARGV[6])
  local elapsed = tonumber(ARGV[7])
  local overloaded = ARGV[8] == 'timeout'
    or (answers >= c.warmup and elapsed >= c.slow_min_ms and elapsed >= c.slow_factor * baseline)
  for _, s in ipairs(c.overload) do
    if status == s then overloaded = true end
  end
  if overloaded then
    extra = math.min(c.max_extra_s, math.max(c.step_s, extra * 2))
  elseif status and status < 500 then
    extra = math.max(0, extra - math.max(c.step_s, extra * c.recovery))
  end
  if status then
    if answers == 0 then
      baseline = elapsed
    else
      local weight = c.up_weight
      if elapsed < baseline then weight = c.down_weight end
      baseline = baseline + weight * (elapsed - baseline)
    end
    answers = answers + 1
  end
end

local blocked_until = tonumber(old_blocked or '0')
if event == 'block' then blocked_until = math.max(blocked_until, now + tonumber(ARGV[6])) end
if extra > 0 or blocked_until > now then
  redis.call('ZADD', KEYS[6], blocked_until, ARGV[4])
elseif pace[2] > 0 or old_blocked then
  redis.call('ZREM', KEYS[6], ARGV[4])  -- it may be listed: it was backed off or blocked once
end
local after = cjson.encode({floor, extra, baseline, answers})
local delay_ms = math.floor((floor + extra) * 1000 + 0.5)
redis.call('HSET', host_key, 'pace', after, 'delay_ms', delay_ms)
-- Only a new delay or a new block moves the host's next start: most answers change neither.
if event == 'block' or tonumber(old_delay or '-1') ~= delay_ms then
  rescore(ARGV[4], KEYS[3], KEYS[4], KEYS[5], KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
end
return after
