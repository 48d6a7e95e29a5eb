-- Remove the waiting customers whose grace ended (grace end <= now).
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 now
-- Returns the removed customers in queue order.
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
if #due == 0 then
  return {}
end
local seq = {}
for _, customer in ipairs(due) do
  seq[customer] = tonumber(redis.call('ZSCORE', KEYS[1], customer) or '0')
end
table.sort(due, function(a, b) return seq[a] < seq[b] end)
for _, customer in ipairs(due) do
  redis.call('ZREM', KEYS[1], customer)
  redis.call('ZREM', KEYS[3], customer)
  redis.call('ZREM', KEYS[4], customer)
end
redis.call('INCR', KEYS[10])
return due
