--[[
  Write a crawl's config once: the first worker's values win, later workers read them back.

    Input:
      KEYS[1] meta         HASH

      ARGV[1] now_ms       or '' for Redis TIME (stored as created_ms)
      ARGV[2] schema
      ARGV[3] per_host     slots per host
      ARGV[4] delay_ms     default delay between two starts on one host
      ARGV[5] seen_bits    the seen set has 2^seen_bits buckets
      ARGV[6] buckets      key buckets (see redis_keys.py), stored only when the crawl is new: a
                           crawl from before buckets existed has none, that is 1

    Output:
      {schema, per_host, delay_ms, seen_bits, buckets} as stored (strings; buckets nil for an old
      crawl). Counters seen, queued and leased
      are created at 0 and state at 'running' when absent (done is seen - queued - leased).
]]
local now = now_ms()
if redis.call('HSETNX', KEYS[1], 'schema', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'buckets', ARGV[6])
end
redis.call('HSETNX', KEYS[1], 'per_host', ARGV[3])
redis.call('HSETNX', KEYS[1], 'delay_ms', ARGV[4])
redis.call('HSETNX', KEYS[1], 'seen_bits', ARGV[5])
redis.call('HSETNX', KEYS[1], 'created_ms', now)
redis.call('HSETNX', KEYS[1], 'state', 'running')
for _, counter in ipairs({'seen', 'queued', 'leased'}) do
  redis.call('HSETNX', KEYS[1], counter, 0)
end
return redis.call('HMGET', KEYS[1], 'schema', 'per_host', 'delay_ms', 'seen_bits', 'buckets')
