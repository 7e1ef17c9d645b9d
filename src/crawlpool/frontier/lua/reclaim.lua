--[[
  Take slots back: for each slot that passes the mode's check, put its URL in flight (if any) back at
  the front of its host queue, delete the owner (which kills the token) and re-score the slot.

    Input:
      KEYS[1]                meta            HASH
      KEYS[2]                ready           ZSET
      KEYS[3]                leased          ZSET
      KEYS[4]                owner           HASH
      then per host h = 1 .. (number of hosts), with base = 4 + (h - 1) * 4:
      KEYS[base + 1]         q:<host>        LIST
      KEYS[base + 2]         retry:<host>    ZSET
      KEYS[base + 3]         host:<host>     HASH
      KEYS[base + 4]         inflight:<host> HASH

      K.per_host, K.delay_ms (the crawl's default delay): constants the loader writes in
      ARGV[1]                now_ms          or '' for Redis TIME
      ARGV[2]                mode            'expired' (the reaper: the deadline is re-checked here,
                                             so of two racing reapers only one requeues; attempts + 1),
                                             'release' (aclose: token checked; no attempt charged),
                                             'mine' (start-up: owned by this worker id; attempts + 1)
      ARGV[3]                worker          worker id (mode 'mine')
      then per slot, from j = 4 in steps of 3:
      ARGV[j]                slot
      ARGV[j + 1]            token           checked in mode 'release' only
      ARGV[j + 2]            h               index of the slot's host in KEYS (1-based)

    Output:
      the number of URLs requeued.
]]
local now = now_ms()
local per_host, delay, mode = K.per_host, K.delay_ms, ARGV[2]
local moved = 0
for j = 4, #ARGV, 3 do
  local slot = ARGV[j]
  local base = 4 + (tonumber(ARGV[j + 2]) - 1) * 4
  local q, d, cfg, inflight = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local host = string.match(slot, '^(.*)#%d+$')
  local o = owner_of(KEYS[4], slot)
  local ok
  if mode == 'expired' then
    local deadline = redis.call('ZSCORE', KEYS[3], slot)
    ok = deadline and tonumber(deadline) <= now
  elseif mode == 'release' then
    ok = o and o.t == tonumber(ARGV[j + 1])
  else
    ok = o and o.w == ARGV[3]
  end
  if ok then
    if o and o.fp then
      local v = redis.call('HGET', inflight, o.fp)
      if v then
        local rec = string.match(v, '^%d+|%d+|(.*)$')
        if mode ~= 'release' then
          local r = cjson.decode(rec)
          r.attempts = r.attempts + 1
          rec = cjson.encode(r)
        end
        redis.call('HDEL', inflight, o.fp)
        redis.call('LPUSH', q, rec)
        redis.call('HINCRBY', KEYS[1], 'leased', -1)
        redis.call('HINCRBY', KEYS[1], 'queued', 1)
        moved = moved + 1
      end
    end
    free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay)
  end
end
return moved
