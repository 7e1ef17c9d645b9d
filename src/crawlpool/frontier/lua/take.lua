--[[
  Hand out at most one URL through each given slot: after the token check, move the host's due
  retries to the front of its queue and, if the host may start now, pop one record into inflight.
  A slot that cannot serve (limit reached, urls_per_lease used, queue empty, host not due) is freed.

    Input:
      KEYS[1]                meta           HASH
      KEYS[2]                ready          ZSET
      KEYS[3]                leased         ZSET
      KEYS[4]                owner          HASH
      then per host h = 1 .. (number of hosts), with base = 4 + (h - 1) * 4:
      KEYS[base + 1]         q:<host>       LIST
      KEYS[base + 2]         retry:<host>   ZSET
      KEYS[base + 3]         host:<host>    HASH
      KEYS[base + 4]         inflight:<host> HASH

      K.per_host, K.delay_ms (the crawl's default delay), K.urls_per_lease (most URLs taken under
      one lease): constants the loader writes in (redis_scripts.py)
      ARGV[1]                now_ms         or '' for Redis TIME
      ARGV[2]                limit          most URLs handed out by this call
      then per slot, from j = 3 in steps of 4:
      ARGV[j]                slot           `<host>#<i>`
      ARGV[j + 1]            token          the slot's fencing token
      ARGV[j + 2]            h              index of the slot's host in KEYS (1-based)
      ARGV[j + 3]            kind           'h': held idle before this call (SKIPped, kept, once the
                                            limit is reached); 'n': leased for this call

    Output:
      {{result per slot, in order}, {wait_ms, leased_slots}}, a result being the URL record handed
      out, 'STALE' (token not the owner's), 'BUSY' (a URL is in flight), 'SKIP' (kept idle) or
      'FREED'; wait_ms and leased_slots as in lease_slots.lua.
]]
local now = now_ms()
local per_host, delay, k_max = K.per_host, K.delay_ms, K.urls_per_lease
local limit = tonumber(ARGV[2])
local given, out = 0, {}
local now_text = false  -- now as a command argument, formatted once
for j = 3, #ARGV, 4 do
  local slot, token, kind = ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 3]
  local base = 4 + (tonumber(ARGV[j + 2]) - 1) * 4
  local q, d, cfg, inflight = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local host, idx = string.match(slot, '^(.*)#(%d+)$')
  local o = owner_of(KEYS[4], slot)
  if not o or o.t ~= token then
    out[#out + 1] = 'STALE'
  elseif o.fp then
    out[#out + 1] = 'BUSY'
  elseif given >= limit and kind == 'h' then
    out[#out + 1] = 'SKIP'
  else
    local v = redis.call('HMGET', cfg, 'last_start_ms', 'delay_ms', 'blocked_until_ms', 'retries')
    local waiting = redis.call('ZRANGEBYSCORE', d, '-inf', now)
    for _, rec in ipairs(waiting) do redis.call('LPUSH', q, rec) end
    if #waiting > 0 then
      redis.call('ZREMRANGEBYSCORE', d, '-inf', now)
      redis.call('HSET', cfg, 'retries', int(math.max(0, tonumber(v[4] or '0') - #waiting)))
    end
    local gap, blocked = tonumber(v[2] or delay), tonumber(v[3] or '0')
    local due = math.max(v[1] and tonumber(v[1]) + gap or 0, blocked)
    local rec = false
    if given < limit and o.n < k_max and due <= now then rec = redis.call('LPOP', q) end
    if not rec then
      free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay, due)
      out[#out + 1] = 'FREED'
    else
      local fp = string.match(rec, '"fp":"(-?%d+)"')  -- encode() writes it so, a string
      redis.call('HSET', inflight, fp, idx .. '|' .. ARGV[j + 1] .. '|' .. rec)
      o.fp = fp
      o.n = o.n + 1
      redis.call('HSET', KEYS[4], slot, cjson.encode(o))
      now_text = now_text or int(now)
      redis.call('HSET', cfg, 'last_start_ms', now_text)
      -- This start moves the host's next one: re-score its other free slots (none with one slot).
      -- Without a delay the host stays due now, so only a queue this emptied changes their scores.
      if per_host > 1 and (gap > 0 or redis.call('LLEN', q) == 0) then
        rescore(host, q, d, cfg, KEYS[2], KEYS[3], per_host, delay, math.max(now + gap, blocked))
      end
      given = given + 1
      out[#out + 1] = rec
    end
  end
end
if given > 0 then  -- meta's counters move once per call
  redis.call('HINCRBY', KEYS[1], 'queued', int(-given))
  redis.call('HINCRBY', KEYS[1], 'leased', int(given))
end
return {out, next_wait(KEYS[2], KEYS[3], now)}
