-- A customer asks to be served: stays where it is when already waiting or assigned, is handed
-- to the longest-free admin when nobody waits, is refused beyond capacity, else waits last.
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 customer, 2 capacity, 3 now
-- Returns {'assigned', admin} | {'waiting', position} | {'full', waiting}.
local customer = ARGV[1]
local admin = redis.call('HGET', KEYS[7], customer)
if admin then
  return {'assigned', admin}
end
local rank = redis.call('ZRANK', KEYS[1], customer)
if rank then
  return {'waiting', rank + 1}
end
local n = redis.call('ZCARD', KEYS[1])
if n == 0 then
  -- Lowest free-since first; equal times by name, as the in-process queue does.
  local free = redis.call('ZRANGE', KEYS[5], 0, 0)
  if #free > 0 then
    admin = free[1]
    redis.call('ZREM', KEYS[5], admin)
    redis.call('HSET', KEYS[6], admin, customer)
    redis.call('HSET', KEYS[7], customer, admin)
    redis.call('HSET', KEYS[8], admin, ARGV[3])
    redis.call('INCR', KEYS[10])
    return {'assigned', admin}
  end
end
if n >= tonumber(ARGV[2]) then
  return {'full', n}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, customer)
redis.call('ZADD', KEYS[3], ARGV[3], customer)
redis.call('INCR', KEYS[10])
return {'waiting', n + 1}
