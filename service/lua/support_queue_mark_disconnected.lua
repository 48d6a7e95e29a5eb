-- A waiting customer's connection dropped: it keeps its place until the grace end.
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 customer, 2 grace end
-- Returns 1 when the customer is waiting (marked), else 0.
local customer = ARGV[1]
if not redis.call('ZSCORE', KEYS[1], customer) then
  return 0
end
local old = redis.call('ZSCORE', KEYS[4], customer)
if not old or tonumber(old) ~= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[4], ARGV[2], customer)
  redis.call('INCR', KEYS[10])
end
return 1
