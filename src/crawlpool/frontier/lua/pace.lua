--[[
  Apply one event to a host's pacing, for every worker of the crawl at once, then re-score its free
  slots. This is `policy.pacing.next_pace` in Lua, so that the read, the rule and the write are one
  atomic step: two workers' backoffs add up, never overwrite each other. Its numbers come from the
  Python module (the loader writes them in as K.<name>), and tests/test_redis_scripts.py
  replays the Python rule's table through it.

    Input:
      KEYS[1] ready          ZSET
      KEYS[2] leased         ZSET
      KEYS[3] q:<host>       LIST
      KEYS[4] retry:<host>   ZSET
      KEYS[5] host:<host>    HASH   fields pace (JSON [floor_s, extra_s, baseline_ms, answers]),
                                    delay_ms (floor + extra), blocked_until_ms
      KEYS[6] h:paced        ZSET   host → blocked_until_ms, for hosts backed off or blocked (status)

      K.per_host, K.delay_ms (the crawl's default delay: the floor of a host never paced before):
      constants the loader writes in (redis_scripts.py)
      ARGV[1] now_ms         or '' for Redis TIME
      ARGV[2] host
      ARGV[3] event          'answer', 'floor' or 'block'
      ARGV[4] answer: the status, or '' for none; floor: the new floor in s; block: for how many ms
      ARGV[5] answer: elapsed ms
      ARGV[6] answer: the error code, or ''

    Output:
      the host's pace after the event, as JSON [floor_s, extra_s, baseline_ms, answers]
]]
local after, moved, _, _, fields = apply_pace(now_ms(), ARGV[2], KEYS[5], KEYS[6], K.delay_ms,
  ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[5], unpack(fields))
-- Only a new delay or a new block moves the host's next start: most answers change neither.
if moved then
  rescore(ARGV[2], KEYS[3], KEYS[4], KEYS[5], KEYS[1], KEYS[2], K.per_host, K.delay_ms)
end
return after
