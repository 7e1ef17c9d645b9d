--[[
  End the URL in flight on a slot (ack, retry or release), after checking the token, then keep the
  slot (the host's next URL may start now and the lease has URLs left) or free it.

    Input:
      KEYS[1]  meta             HASH
      KEYS[2]  ready            ZSET
      KEYS[3]  leased           ZSET
      KEYS[4]  owner            HASH
      KEYS[5]  q:<host>         LIST
      KEYS[6]  retry:<host>     ZSET
      KEYS[7]  host:<host>      HASH
      KEYS[8]  inflight:<host>  HASH
      KEYS[9]  records:<w>      STREAM, this worker's records in this bucket
      KEYS[10] done_by          HASH
      KEYS[11] h:paced          ZSET   (pace.lua's KEYS[6])

      K.per_host, K.delay_ms (the crawl's default delay), K.urls_per_lease: constants the loader
      writes in (redis_scripts.py)
      ARGV[1]  now_ms           or '' for Redis TIME
      ARGV[2]  host
      ARGV[3]  fp               the URL's fingerprint (signed decimal)
      ARGV[4]  token            the lease's fencing token
      ARGV[5]  mode             'ack', 'retry' or 'release'
      ARGV[6]  payload          ack: the page record (JSON); retry: the URL record with attempts + 1;
                                release: ''
      ARGV[7]  extra            ack: error code or 'ok'; retry: delay ms; release: ''
      ARGV[8]  worker           worker id
      ARGV[9]  next             'next': an ack that keeps the slot of a host without delay hands out
                                the host's next URL through it; '': never
      ARGV[10] after            the last id of records:<w> the worker had seen when it first sent
                                this ack ('0-0': none): had it committed, its record is above it
      ARGV[11] answer           'answer': apply the host's answer to its pacing first, as pace.lua
                                does, in this same step (ARGV[12..14] are pace.lua's ARGV[4..6]);
                                '': no answer. Only a URL that ends here counts it (not STALE or
                                ALREADY: a resent call must not count one answer twice)
      ARGV[12] status           or ''
      ARGV[13] elapsed_ms
      ARGV[14] error code       or ''

    Output:
      {'KEPT', slot} or {'FREED', slot} when the URL ended; {'NEXT', slot, record} when it ended and
      the slot, kept, has the host's next URL (its record) in flight under the same token; {'STALE'}
      when the token is not the slot owner's (nothing changed); {'ALREADY'} for an ack whose URL
      this worker already committed: its record is in records:<w> above `after` (a resent call
      whose first reply was lost; the worker's claim keeps those records in the stream while the
      call is open, redis_trim.py). An ack's reply ends with its record's stream id.
]]
local now = now_ms()
local per_host, delay, k_max = K.per_host, K.delay_ms, K.urls_per_lease
local host, fp, token, mode = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local q, d, cfg, inflight = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local v = redis.call('HGET', inflight, fp)
if not v then
  -- Rare (a resent ack, a paused worker's): look for the URL's record among this worker's records
  -- since `after`, a page of entries at a time.
  if mode == 'ack' then
    local from = '(' .. ARGV[10]
    repeat
      local entries = redis.call('XRANGE', KEYS[9], from, '+', 'COUNT', 256)
      for _, entry in ipairs(entries) do
        -- fields: 'fp', fp, 't', token, ...: this very lease's record, not one of a later lease
        if entry[2][2] == fp and entry[2][4] == ARGV[4] then return {'ALREADY'} end
      end
      if #entries > 0 then from = '(' .. entries[#entries][1] end
    until #entries < 256
  end
  return {'STALE'}
end
local idx, t = string.match(v, '^(%d+)|(%d+)|')
local slot = host .. '#' .. idx
local o = owner_of(KEYS[4], slot)
if t ~= ARGV[4] or not o or o.t ~= token then return {'STALE'} end
redis.call('HDEL', inflight, fp)
local paced_moved = false  -- the answer moved the host's next start: its free slots need a rescore
local times = false  -- the host's last_start_ms, delay_ms, blocked_until_ms and retries
local host_fields = false  -- what to write to the host's hash, in one HSET at the end
if ARGV[11] == 'answer' then
  -- One read of the host for its pace and its times (an answer starts no block; it may write 0 for
  -- one that is over, which schedules nothing, so the times read here stay right).
  local h = redis.call('HMGET', cfg, 'pace', 'blocked_until_ms', 'last_start_ms', 'retries')
  local _, moved, delay_ms, last_start, fields = apply_pace(now, host, cfg, KEYS[11], delay, 'answer',
    ARGV[12], ARGV[13], ARGV[14], h)
  paced_moved, host_fields = moved, fields
  times = {last_start, delay_ms, h[2], h[4]}
end
local leased_by, queued_by = -1, 0  -- meta's counters move once, at the end
local record_id
if mode == 'ack' then
  record_id = redis.call('XADD', KEYS[9], '*', 'fp', fp, 't', ARGV[4], 'worker', ARGV[8], 'page', ARGV[6])
  -- Failures by code; successes are done minus the failures, so 'ok' costs no command.
  if ARGV[7] ~= 'ok' then redis.call('HINCRBY', KEYS[10], ARGV[7], '1') end
elseif mode == 'retry' then
  redis.call('ZADD', d, now + tonumber(ARGV[7]), ARGV[6])
  redis.call('HINCRBY', cfg, 'retries', '1')
  queued_by = 1
else
  redis.call('LPUSH', q, string.sub(v, #idx + #t + 3))  -- the URL record after 'idx|token|'
  queued_by = 1
end
o.fp = nil
times = times or redis.call('HMGET', cfg, 'last_start_ms', 'delay_ms', 'blocked_until_ms', 'retries')
local gap, blocked = tonumber(times[2] or delay), tonumber(times[3] or '0')
local due = math.max(times[1] and tonumber(times[1]) + gap or 0, blocked)
local reply
local queued_before = 0
if o.n < k_max and due <= now then queued_before = redis.call('LLEN', q) end
if queued_before > 0 then
  local next_rec = false
  if ARGV[9] == 'next' and mode == 'ack' and gap == 0 then
    -- The host has no delay: hand its next URL out at once through this slot (what take would do),
    -- saving the worker a call. Due retries go first, as in take; the host's count of retries
    -- waiting spares the look when there are none (take looks always, so a wrong count only delays).
    local retries = tonumber(times[4] or '0')
    if retries > 0 then
      local waiting = redis.call('ZRANGEBYSCORE', d, '-inf', now)
      for _, r in ipairs(waiting) do redis.call('LPUSH', q, r) end
      if #waiting > 0 then
        redis.call('ZREMRANGEBYSCORE', d, '-inf', now)
        host_fields = host_fields or {}
        host_fields[#host_fields + 1] = 'retries'
        host_fields[#host_fields + 1] = int(math.max(0, retries - #waiting))
      end
    end
    next_rec = redis.call('LPOP', q)
  end
  if next_rec then
    local next_fp = string.match(next_rec, '"fp":"(-?%d+)"')
    redis.call('HSET', inflight, next_fp, idx .. '|' .. ARGV[4] .. '|' .. next_rec)
    o.fp = next_fp
    o.n = o.n + 1
    -- The slot's deadline stays: the holder's heartbeat pushes it, as for a slot kept idle.
    host_fields = host_fields or {}
    host_fields[#host_fields + 1] = 'last_start_ms'
    host_fields[#host_fields + 1] = int(now)
    leased_by, queued_by = leased_by + 1, queued_by - 1
    reply = {'NEXT', slot, next_rec}
  else
    reply = {'KEPT', slot}
  end
  redis.call('HSET', KEYS[4], slot, cjson.encode(o))
  -- An ack leaves the host's work as it was, a retry or a release adds some: score the free slots
  -- (none with one slot). A URL handed out without delay leaves the host due now, so only a queue it
  -- emptied changes their scores.
  if per_host > 1 and (mode ~= 'ack' or paced_moved or (next_rec and queued_before == 1)) then
    rescore(host, q, d, cfg, KEYS[2], KEYS[3], per_host, delay, next_rec and math.max(now, blocked) or due)
  end
else
  free_slot(slot, host, q, d, cfg, KEYS[2], KEYS[3], KEYS[4], per_host, delay, due)
  reply = {'FREED', slot}
end
if host_fields then redis.call('HSET', cfg, unpack(host_fields)) end
if leased_by ~= 0 then redis.call('HINCRBY', KEYS[1], 'leased', int(leased_by)) end
if queued_by ~= 0 then redis.call('HINCRBY', KEYS[1], 'queued', int(queued_by)) end
if record_id then reply[#reply + 1] = record_id end
return reply
