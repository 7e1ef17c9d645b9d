--[[
  Queue every request whose fingerprint is new: SADD to its seen bucket and, only if new, RPUSH the
  record on its host queue, in one step; then re-score the free slots of each host whose queue was empty.

    Input:
      KEYS[1]                meta       HASH
      KEYS[2]                ready      ZSET
      KEYS[3]                leased     ZSET
      KEYS[3 + b]            seen:<b>   SET, the request's seen bucket, for b = 1 .. nb
      then per host h = 1 .. nh, with base = 3 + nb + (h - 1) * 3:
      KEYS[base + 1]         q:<host>      LIST
      KEYS[base + 2]         retry:<host>  ZSET
      KEYS[base + 3]         host:<host>   HASH

      K.per_host, K.delay_ms (the crawl's default delay): constants the loader writes in
      ARGV[1]                now_ms     unused (add needs no time), kept as every script's clock
      ARGV[2]                nb         number of seen buckets in KEYS
      ARGV[3]                nh         number of hosts in KEYS
      ARGV[3 + h]            host name of host h, for h = 1 .. nh
      then per request, from j = 4 + nh in steps of 4:
      ARGV[j]                b          index of its seen bucket in KEYS (1-based)
      ARGV[j + 1]            h          index of its host (1-based)
      ARGV[j + 2]            fp         fingerprint as signed decimal int64
      ARGV[j + 3]            record     the URL record (JSON)

    Output:
      the number of requests queued (0 when all were seen before: add is idempotent). meta's seen and
      queued grow by it, and a crawl in state 'done' is 'running' again.
]]
local per_host, delay, nb, nh = K.per_host, K.delay_ms, tonumber(ARGV[2]), tonumber(ARGV[3])
local hosts0 = 3 + nb
local added, order = 0, {}
for j = 4 + nh, #ARGV, 4 do
  local h = tonumber(ARGV[j + 1])
  if redis.call('SADD', KEYS[3 + tonumber(ARGV[j])], ARGV[j + 2]) == 1 then
    -- A queue that was empty before this push: its host's free slots need scores. One that was not
    -- is already scored right (every step that empties or fills a queue re-scores its host).
    if redis.call('RPUSH', KEYS[hosts0 + (h - 1) * 3 + 1], ARGV[j + 3]) == 1 then order[#order + 1] = h end
    added = added + 1
  end
end
for _, h in ipairs(order) do
  local base = hosts0 + (h - 1) * 3
  rescore(ARGV[3 + h], KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[2], KEYS[3], per_host, delay)
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'seen', added)
  redis.call('HINCRBY', KEYS[1], 'queued', added)
  if redis.call('HGET', KEYS[1], 'state') == 'done' then redis.call('HSET', KEYS[1], 'state', 'running') end
end
return added
