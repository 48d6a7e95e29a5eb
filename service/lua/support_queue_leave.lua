-- A waiting customer leaves the queue (its disconnect mark goes with it).
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 customer
-- Returns 1 when it was waiting, else 0.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('INCR', KEYS[10])
return 1
