--[[
  Record a URL that will never be fetched (its record is final), unless it was seen already.

    Input:
      KEYS[1] meta       HASH
      KEYS[2] seen:<b>   SET, the fingerprint's seen bucket
      KEYS[3] records:<w> STREAM, this worker's records in this bucket
      KEYS[4] done_by    HASH

      ARGV[1] fp         fingerprint as signed decimal int64
      ARGV[2] page       the page record (JSON)
      ARGV[3] code       error code, or 'ok'
      ARGV[4] worker     worker id

    Output:
      the record's stream id when recorded (seen +1, so done +1 too, one stream entry, done_by[code] +1);
      0 when the fingerprint was already seen, and nothing changed.
]]
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
local id = redis.call('XADD', KEYS[3], '*', 'fp', ARGV[1], 'worker', ARGV[4], 'page', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seen', 1)
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
return id
