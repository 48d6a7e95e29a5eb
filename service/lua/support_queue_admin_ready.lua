-- An admin is available: takes the head of the queue, or joins the free set when nobody
-- waits. An admin still serving someone changes nothing (one customer at a time).
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 admin, 2 now
-- Returns the customer taken, or nil.
local admin = ARGV[1]
if redis.call('HEXISTS', KEYS[6], admin) == 1 then
  return false
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then
  redis.call('ZADD', KEYS[5], 'NX', ARGV[2], admin)
  return false
end
local customer = head[1]
redis.call('ZREM', KEYS[1], customer)
redis.call('ZREM', KEYS[3], customer)
redis.call('ZREM', KEYS[4], customer)
redis.call('ZREM', KEYS[5], admin)
redis.call('HSET', KEYS[6], admin, customer)
redis.call('HSET', KEYS[7], customer, admin)
redis.call('HSET', KEYS[8], admin, ARGV[2])
redis.call('INCR', KEYS[10])
return customer
