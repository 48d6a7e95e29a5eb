-- An admin leaves the free set (away, offline, busy elsewhere); an assignment stays.
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 admin
-- Returns 1 when it was free, else 0.
return redis.call('ZREM', KEYS[5], ARGV[1])
