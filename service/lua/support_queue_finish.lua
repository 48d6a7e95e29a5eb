-- An admin's assignment ends; its handle time enters the statistics exactly as
-- core/support/eta.py record_handle computes them (same operations in the same order, and
-- numbers stored with 17 significant digits, so both backends agree to the last bit).
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- ARGV: 1 admin, 2 now, 3 alpha
-- Returns the customer whose assignment ended, or nil.
local admin = ARGV[1]
local customer = redis.call('HGET', KEYS[6], admin)
if not customer then
  return false
end
local started = tonumber(redis.call('HGET', KEYS[8], admin) or '')
redis.call('HDEL', KEYS[6], admin)
redis.call('HDEL', KEYS[7], customer)
redis.call('HDEL', KEYS[8], admin)
redis.call('INCR', KEYS[10])
if started == nil then
  return customer
end
local sample = tonumber(ARGV[2]) - started
if not (sample > 0) then
  sample = 0
end
local alpha = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[9], 'ewma', 'spread', 'count')
local ewma = tonumber(s[1] or '')
local spread = tonumber(s[2] or '')
local count = tonumber(s[3] or '')
if ewma == nil or spread == nil or count == nil then
  ewma = sample
  spread = sample / 2
  count = 1
else
  spread = spread + alpha * (math.abs(sample - ewma) - spread)
  ewma = ewma + alpha * (sample - ewma)
  count = count + 1
end
redis.call('HSET', KEYS[9], 'ewma', string.format('%.17g', ewma),
  'spread', string.format('%.17g', spread), 'count', string.format('%d', count))
return customer
